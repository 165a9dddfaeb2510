# syntax=docker/dockerfile:1
# The MQTT broker. Build from the repository root:
#   docker build -f docker/broker.Dockerfile -t mqtt-broker .

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p data-plane --bin broker

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 mqtt \
    && mkdir -p /var/lib/mqtt-broker && chown mqtt /var/lib/mqtt-broker
COPY --from=build /src/target/release/broker /usr/local/bin/broker
USER mqtt
VOLUME /var/lib/mqtt-broker
ENV BROKER_LISTEN=0.0.0.0:1883 \
    BROKER_HTTP_LISTEN=0.0.0.0:8081 \
    BROKER_DATA_DIR=/var/lib/mqtt-broker/store \
    BROKER_SNAPSHOT=/var/lib/mqtt-broker/last-known-good.json
EXPOSE 1883 8883 8081
HEALTHCHECK --interval=5s --timeout=3s --retries=5 CMD curl -fsS http://127.0.0.1:8081/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/broker"]
