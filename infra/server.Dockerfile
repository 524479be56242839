# The api server container (ECS Fargate behind an Application Load Balancer, arm64): the same
# router as the api function, long-lived. Build from the workspace root:
#   docker buildx build --platform linux/arm64 -f infra/server.Dockerfile -t live-balances-server .
# Multi-stage like the poller's: compile in the Rust image, run from a small distroless base as
# a non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin server

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/server /server
USER nonroot:nonroot
EXPOSE 8080
ENV SERVER_ADDR=0.0.0.0:8080 LOG_FORMAT=json
ENTRYPOINT ["/server"]
