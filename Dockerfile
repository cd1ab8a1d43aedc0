# The hippo image: the `hippo` binary and the built-in plugins.
# Build: docker build -t hippo .
FROM rust:1.95-bookworm AS build
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
ENV CARGO_TARGET_DIR=/target
RUN scripts/build-guests && cargo build --release --bin hippo

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/hippo hippo && mkdir -p /var/lib/hippo/plugins /var/lib/hippo/data \
    && chown -R hippo /var/lib/hippo
COPY --from=build /target/release/hippo /usr/local/bin/hippo
COPY --from=build /src/plugins/*.wasm /var/lib/hippo/plugins/
USER hippo
WORKDIR /var/lib/hippo
ENV HIPPO_DATA_DIR=/var/lib/hippo/data HIPPO_PLUGINS_DIR=/var/lib/hippo/plugins
EXPOSE 8000
ENTRYPOINT ["hippo"]
CMD ["serve", "--listen", "0.0.0.0:8000"]
