# Multi-stage build: compile with the Rust toolchain, run as non-root on a
# minimal glibc base. (Docker is not available on the development machines;
# the Helm chart's default image name matches this image.)
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin foresight

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/foresight /usr/local/bin/foresight
USER nonroot:nonroot
EXPOSE 9090 8080
ENTRYPOINT ["/usr/local/bin/foresight"]
CMD ["serve"]
