# Build: docker build -t tg-ingest .
# Run:   docker run -e TG_INGEST__TELEGRAM__TOKEN=... -v tg-data:/data tg-ingest
FROM rust:1.95-slim AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY settings ./settings
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin tg-ingest

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/tg-ingest /usr/local/bin/tg-ingest
ENV TG_INGEST__DATA_DIR=/data RUST_LOG=info
VOLUME /data
# SIGTERM stops polling and lets in-flight work finish.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tg-ingest"]
