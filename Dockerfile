# The hippo image: the `hippo` binary, the built-in plugins with their
# manifests, ONNX Runtime and the default model (scripts/fetch-models).
# Build: docker build -t hippo .   (or `docker compose build`)
FROM rust:1.95-bookworm AS build
RUN rustup target add wasm32-wasip2 \
    && apt-get update -qq && apt-get install -y -qq python3-venv python3-pip >/dev/null
WORKDIR /src
COPY . .
# The binary ships stripped, without debug info (about a fifth of its size).
ENV CARGO_TARGET_DIR=/target HIPPO_MODELS_DIR=/models \
    CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols
RUN scripts/fetch-models && scripts/build-guests --plugins-only && cargo build --release --bin hippo

FROM debian:bookworm-slim
# curl: the compose file's health checks ask /readyz.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends curl ca-certificates >/dev/null \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --home /var/lib/hippo hippo && mkdir -p /var/lib/hippo/plugins /var/lib/hippo/data \
    && chown -R hippo /var/lib/hippo
COPY --from=build /target/release/hippo /usr/local/bin/hippo
COPY --from=build /src/plugins/*.wasm /src/plugins/*.toml /var/lib/hippo/plugins/
COPY --from=build /models/libonnxruntime.so.1.32.0 /opt/hippo/models/
COPY --from=build /models/all-minilm-l6-v2 /opt/hippo/models/all-minilm-l6-v2
USER hippo
WORKDIR /var/lib/hippo
ENV HIPPO_DATA_DIR=/var/lib/hippo/data HIPPO_PLUGINS_DIR=/var/lib/hippo/plugins \
    HIPPO_MODELS_DIR=/opt/hippo/models
EXPOSE 8000
ENTRYPOINT ["hippo"]
CMD ["serve", "--listen", "0.0.0.0:8000"]
