# foresight's container image. Build from the repository root:
#
#   docker build -t foresight:0.1.0 .
#
# foresight:0.1.0 is the Helm chart's default image (image.repository
# foresight, tag = the chart's appVersion = Cargo.toml's version); push it to
# your registry and set image.repository, or load it into a kind cluster.

# Build stage: the full Rust toolchain. protox compiles the proto in pure
# Rust and aws-lc builds with the image's C compiler, so nothing else is needed.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Only what the build reads: copying the whole checkout would send target/
# and notebooks into the build context's layer.
COPY Cargo.toml Cargo.lock ./
COPY proto proto
COPY src src
COPY models models
COPY benches benches
RUN cargo build --release --locked --bin foresight

# Runtime: distroless glibc with CA certificates (for an https Prometheus)
# and no shell or package manager, running as the non-root user 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/foresight /usr/local/bin/foresight
USER 65532:65532
# gRPC for KEDA, HTTP for /healthz, /readyz, /metrics.
EXPOSE 9090 8080
ENTRYPOINT ["/usr/local/bin/foresight"]
CMD ["serve"]
