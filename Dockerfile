# The one dynzero binary in a small non-root image.
#
#   docker build -t dynzero .
#   docker run --rm dynzero check-config
#
# Configuration defaults (config/default.toml) and the JSON Schemas are
# compiled into the binary; a deployment sets DYNZERO__SECTION__KEY variables
# or mounts a file for --config.

FROM rust:1.95-slim-bookworm AS build
# jemalloc, the binary's allocator, is built with make.
RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The cache mounts keep crates and build outputs between builds.
COPY Cargo.toml Cargo.lock ./
COPY services services
COPY tests tests
COPY config config
COPY schemas schemas
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p dynzero \
    && install -D -m 755 target/release/dynzero /out/dynzero

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin dynzero
COPY --from=build /out/dynzero /usr/local/bin/dynzero
USER 10001:10001
# /metrics, /healthz, /readyz (metrics.listen) and the read-side API (api.listen).
EXPOSE 9464 8080
ENTRYPOINT ["/usr/local/bin/dynzero"]
CMD ["run"]
