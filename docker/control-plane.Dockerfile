# syntax=docker/dockerfile:1
# The control plane with the web console. Build from the repository root:
#   docker build -f docker/control-plane.Dockerfile -t mqtt-control-plane .

FROM node:20-bookworm-slim AS console
WORKDIR /src/web-console
COPY web-console/package.json web-console/package-lock.json ./
RUN npm ci
COPY web-console/ ./
COPY openapi/ /src/openapi/
RUN npm run build

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p control-plane

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 mqtt
COPY --from=build /src/target/release/control-plane /usr/local/bin/control-plane
COPY --from=console /src/web-console/dist /srv/web-console
USER mqtt
ENV CP_LISTEN=0.0.0.0:8080 CP_CONSOLE_DIR=/srv/web-console
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --retries=5 CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["/usr/local/bin/control-plane"]
