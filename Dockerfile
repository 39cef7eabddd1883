# Build: docker build -t tg-ingest .
# Run:   docker run -e TG_INGEST__TELEGRAM__TOKEN=... -v tg-data:/data -p 8080:8080 tg-ingest
# Or with SeaweedFS: see compose.yaml.
# Both base images are pinned to released versions of the same Debian release (trixie), so the
# binary links against the glibc it runs with. To upgrade, change both tags together.
FROM rust:1.95.0-slim-trixie AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY settings ./settings
COPY benches ./benches
COPY tests ./tests
# A stripped binary without debug info: the image carries no symbols.
ENV CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols
RUN cargo build --release --locked --bin tg-ingest

FROM debian:13.6-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin tg-ingest \
    && mkdir -p /data && chown tg-ingest:tg-ingest /data
COPY --from=build /src/target/release/tg-ingest /usr/local/bin/tg-ingest
ENV TG_INGEST__DATA_DIR=/data TG_INGEST__HTTP__LISTEN=0.0.0.0:8080 RUST_LOG=info
USER tg-ingest
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
# SIGTERM stops polling and lets in-flight work finish.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tg-ingest"]
