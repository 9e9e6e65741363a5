# syntax=docker/dockerfile:1
#
# Container image for service-desk-bot: one `deno compile`d binary on distroless.
#
#   docker build -t service-desk-bot .
#   docker run -d --name bot --env-file deploy/bot.env -p 127.0.0.1:8080:8080 \
#     -v service-desk-bot:/var/lib/service-desk-bot service-desk-bot
#
# The binary must be built where `deno compile` can download its runtime (denort) from the
# internet: any machine with internet access, or the build stage of this Dockerfile.
# An offline host can run the result but cannot build it.

# Keep in step with the Deno used in development and CI (`deno --version`).
ARG DENO_VERSION=2.9.6

# Base images. The build image is pinned to an exact version; the runtime image has no
# version tags (distroless publishes only moving tags such as `nonroot`). Neither is pinned
# to a digest yet, because no registry could be reached where this file was written. To pin
# one, look its digest up and append it after the tag (the build then uses the digest, the
# tag is only a label), e.g.
#   docker buildx imagetools inspect denoland/deno:2.9.6 | awk '/^Digest:/ {print $2}'
#   FROM denoland/deno:${DENO_VERSION}@sha256:<that digest> AS build
#   docker buildx imagetools inspect gcr.io/distroless/cc-debian12:nonroot | awk '/^Digest:/ {print $2}'
#   FROM gcr.io/distroless/cc-debian12:nonroot@sha256:<that digest>
# and look them up again whenever DENO_VERSION changes or a security update is due.

# ---------------------------------------------------------------------------------------
FROM denoland/deno:${DENO_VERSION} AS build
WORKDIR /src

# Dependencies first, so that this layer is cached until deno.json or deno.lock changes.
# --frozen: fail instead of silently updating a lock file that is out of date.
COPY deno.json deno.lock ./
RUN deno install --frozen

COPY . .
# `deno install` above filled node_modules/: PGlite's WebAssembly files are imported from
# there as bytes and compiled into the binary, like the migrations.
RUN deno task compile

# The state directory (the working directory at run time). Distroless has no shell to
# create it, so it is made here and copied with its owner set to `nonroot` (65532).
RUN mkdir -p /state/data /state/backups /state/logs && chmod -R 0750 /state

# ---------------------------------------------------------------------------------------
# glibc + libgcc, no shell, no package manager; `nonroot` is uid/gid 65532.
# Distroless has no version tags: pin the digest as explained at the top.
FROM gcr.io/distroless/cc-debian12:nonroot

COPY --from=build /src/dist/service-desk-bot /usr/local/bin/service-desk-bot
COPY --from=build --chown=65532:65532 /state /var/lib/service-desk-bot

# Permissions are compiled in as relative paths (--allow-read/--allow-write=data,backups,
# logs): they resolve against the working directory, so it must be the state directory.
WORKDIR /var/lib/service-desk-bot
USER 65532:65532

# Listen on all interfaces inside the container (the program's default is 127.0.0.1).
# MALLOC_MMAP_THRESHOLD_ as the start task in deno.json sets it (see the README's Build section).
ENV HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080 \
    MALLOC_MMAP_THRESHOLD_=131072
EXPOSE 8080
VOLUME ["/var/lib/service-desk-bot"]

# `healthcheck` asks GET /health (127.0.0.1 when HTTP_HOST is 0.0.0.0): exit 0 on pass or
# warn, 1 on fail or no answer.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/service-desk-bot", "healthcheck"]

# The bot finishes in-flight updates within SHUTDOWN_TIMEOUT (default 25 s) after SIGTERM:
# give `docker stop` a longer timeout (`-t 40`, or stop_grace_period in compose).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/service-desk-bot"]
