# Switchboard: a static binary on a distroless base, running as non-root.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
# The pinned, patched embedded engine (see third_party/README.md) is a replace target.
COPY third_party/ third_party/
RUN go mod download
COPY . .
ARG VERSION=dev
# The production variant: -tags noembedded leaves the embedded engine
# (FerretDB, SQLite and their drivers) out; it needs SWITCHBOARD_MONGODB_URI.
RUN CGO_ENABLED=0 go build -tags noembedded -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/switchboard ./cmd/switchboard \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/switchboard /usr/local/bin/switchboard
COPY --from=build --chown=65532:65532 /out/data /var/lib/switchboard
USER nonroot:nonroot
ENV SWITCHBOARD_ADDR=0.0.0.0:8080 \
    SWITCHBOARD_DATA_DIR=/var/lib/switchboard
VOLUME /var/lib/switchboard
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["serve"]
