# syntax=docker/dockerfile:1
# The worker tier, plus the hokusai CLI (models apply, keys create) for
# one-off admin tasks: the CLI links worker code, so it ships here and never
# in the API image. No token and no model is baked in: the token arrives at
# run time (compose secret, ECS secret) and models are mounted or downloaded
# into HF_HOME.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY cmd/ cmd/
COPY api/ api/
COPY internal/ internal/
COPY jobs/ jobs/
COPY worker/ worker/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/hokusai-worker ./cmd/hokusai
# The model cache must exist and belong to the nonroot user (65532): the
# final image has no shell to create it.
RUN mkdir -p /cache/hokusai

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/hokusai-worker /out/hokusai /usr/local/bin/
COPY --from=build --chown=65532:65532 /cache/hokusai /var/cache/hokusai
USER nonroot:nonroot
ENV HF_HOME=/var/cache/hokusai \
    HOKUSAI_HEALTH_ADDR=:8081
EXPOSE 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/hokusai-worker", "healthcheck", "--url", "http://127.0.0.1:8081/readyz"]
ENTRYPOINT ["/usr/local/bin/hokusai-worker"]
