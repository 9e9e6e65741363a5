-- Bans by admins (/ban, /unban): a banned user's updates are dropped before any feature.

-- migrate:up
alter table users add column banned_at timestamptz;

-- migrate:down
alter table users drop column banned_at;
