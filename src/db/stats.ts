/** The service desk's numbers for `/stats`: users and requests, read in four scans. */
import type { Sql } from "./database.ts";

/** What `/stats` shows. */
export interface Stats {
  users: { total: number; today: number; blocked: number; banned: number };
  /** Requests by status, statuses in alphabetical order; only statuses with requests. */
  requests: { status: string; count: number }[];
  /** Median time from creation to closing of done requests; null when none is done. */
  medianCloseSeconds: number | null;
  /** Done requests the median is taken over. */
  done: number;
  /** Median time from creation to the first take; null when none was taken. */
  medianTakeSeconds: number | null;
  /** Average rating of done requests (1–5); null when none was rated. */
  averageRating: number | null;
  /** Ratings the average is taken over. */
  ratings: number;
}

/** Reads the service desk's numbers: four queries, each a single scan. */
export async function readStats(sql: Sql): Promise<Stats> {
  const [users] = await sql<Stats["users"][]>`
    select count(*)::int as total,
      (count(*) filter (
        where created_at >= date_trunc('day', now() at time zone 'utc') at time zone 'utc'
      ))::int as today,
      (count(*) filter (where blocked_at is not null))::int as blocked,
      (count(*) filter (where banned_at is not null))::int as banned
    from users`;
  const requests = await sql<{ status: string; count: number }[]>`
    select status, count(*)::int as count from requests group by status order by status`;
  const [closing] = await sql<{ seconds: number | null; done: number }[]>`
    select extract(epoch from percentile_cont(0.5) within group (
        order by closed_at - created_at))::float8 as seconds,
      count(*)::int as done
    from requests where status = 'done' and closed_at is not null`;
  const [quality] = await sql<{ take: number | null; rating: number | null; ratings: number }[]>`
    select extract(epoch from percentile_cont(0.5) within group (order by taken_at - created_at)
        filter (where taken_at is not null))::float8 as take,
      avg(rating)::float8 as rating, count(rating)::int as ratings
    from requests`;
  return {
    users: { ...users! },
    requests: requests.map(({ status, count }) => ({ status, count })),
    medianCloseSeconds: closing?.seconds ?? null,
    done: closing?.done ?? 0,
    medianTakeSeconds: quality?.take ?? null,
    averageRating: quality?.rating ?? null,
    ratings: quality?.ratings ?? 0,
  };
}
