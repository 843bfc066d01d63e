# Build:  docker build -t partnerd .
# Run:    docker compose up --build   (see docker-compose.yml)

ARG GO_VERSION=1.27.3

# ---- build stage -------------------------------------------------------------
FROM golang:${GO_VERSION}-bookworm AS build

WORKDIR /src

# Download modules first so this layer stays cached until go.mod/go.sum change.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/partnerd ./cmd/partnerd

# ---- runtime stage -----------------------------------------------------------
FROM gcr.io/distroless/static-debian12:nonroot

COPY --from=build /out/partnerd /partnerd

USER nonroot:nonroot
EXPOSE 8080

ENTRYPOINT ["/partnerd"]
CMD ["serve"]
