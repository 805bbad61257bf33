# syntax=docker/dockerfile:1
# The API tier: authenticates, validates and enqueues. The build copies only
# the packages the API may link (no worker/, no models/), so an import of
# worker code fails here as well as in the dependency test.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY cmd/ cmd/
COPY api/ api/
COPY internal/ internal/
COPY jobs/ jobs/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/hokusai-api

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/hokusai-api /usr/local/bin/hokusai-api
USER nonroot:nonroot
ENV HOKUSAI_LISTEN=:8080
EXPOSE 8080
# Readiness (Redis reachable), so compose's depends_on waits for a usable API.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/hokusai-api", "healthcheck", "--url", "http://127.0.0.1:8080/ready"]
ENTRYPOINT ["/usr/local/bin/hokusai-api"]
