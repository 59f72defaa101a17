# upkeep's container image. docs/deploy.md says how to build, run and upgrade it.
#
# BASE_IMAGE: any image with Node 20 and npm on PATH and Debian bookworm's apt (the default is the
# public Node image). The stages are ordered so each one's cache survives a source change:
# system (apt) and deps (npm ci) only rebuild when their inputs change.
ARG BASE_IMAGE=node:20-bookworm-slim

# What upkeep runs next to: pg_dump and psql (backup.pg_dump, backup.verify), gzip and setpriv
# (util-linux: child processes die with upkeep), and the non-root user it runs as.
# Debian bookworm's postgresql-client is 15: pg_dump must be at least the server's major version,
# so this image backs up PostgreSQL up to 15. docs/deploy.md shows how to add newer clients.
FROM ${BASE_IMAGE} AS system
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-client gzip util-linux \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 upkeep \
 && useradd --system --uid 10001 --gid upkeep --home-dir /var/lib/upkeep --no-create-home --shell /usr/sbin/nologin upkeep \
 && install -d -o upkeep -g upkeep -m 0750 /var/lib/upkeep \
 && install -d -m 0755 /etc/upkeep

# The full dependency tree, to compile with; it changes only with the lockfile.
FROM ${BASE_IMAGE} AS deps
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

# Build (npm pack runs prepack: scripts/build.ts bundles the sources and their pure-JavaScript
# dependencies into dist/), then install the packed tarball as users get it: the bundle and the
# production dependencies it loads on demand (pg, ioredis, dockerode) only, in /opt/upkeep.
FROM deps AS build
COPY . .
RUN npm pack --silent --pack-destination /tmp \
 && npm install --global --prefix /opt/upkeep --omit=dev --no-audit --no-fund /tmp/upkeep-*.tgz

FROM system
COPY --from=build /opt/upkeep /opt/upkeep
COPY deploy/docker/upkeep.yml /etc/upkeep/upkeep.yml
ENV PATH=/opt/upkeep/bin:$PATH
USER 10001:10001
# A relative state.dir (the config's default ./data) also lands on the volume.
WORKDIR /var/lib/upkeep
VOLUME ["/var/lib/upkeep"]
EXPOSE 9630
# Node is the only HTTP client in the image. Set UPKEEP_HEALTHCHECK_URL when the config moves the port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.UPKEEP_HEALTHCHECK_URL || 'http://127.0.0.1:9630/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["upkeep"]
CMD ["serve", "--config", "/etc/upkeep/upkeep.yml"]
