# syntax=docker/dockerfile:1
# auth-api: multi-stage build. Dependencies are compiled in their own layer (cargo-chef), so a
# source change rebuilds only the crate itself. The runtime image is distroless, non-root.

ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json --bin auth-api
COPY . .
# build.rs records this in auth_build_info{git_sha} (the build context has no .git).
ARG GIT_SHA=unknown
ENV GIT_SHA=${GIT_SHA}
RUN cargo build --release --locked --bin auth-api

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=builder /app/target/release/auth-api /usr/local/bin/auth-api
# The embedded SQLite default writes under the working directory; production uses PostgreSQL.
WORKDIR /home/nonroot
ENV HOST_ADDR=0.0.0.0:3001 \
    METRICS_ADDR=0.0.0.0:9100 \
    LOG_FORMAT=json
EXPOSE 3001 9100
USER 65532:65532
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/auth-api", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/auth-api"]
CMD ["serve"]
