# The poller container (ECS Fargate, arm64). Build from the workspace root:
#   docker buildx build --platform linux/arm64 -f infra/poller.Dockerfile -t live-balances-poller .
# Multi-stage: compile in the Rust image, run from a small distroless base as a non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin poller

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/poller /poller
USER nonroot:nonroot
EXPOSE 8080
ENV POLLER_HTTP_ADDR=0.0.0.0:8080 LOG_FORMAT=json
ENTRYPOINT ["/poller"]
