# A small static image: the pure-Go server binary on a distroless base,
# running as a non-root user. Mount the configuration at
# /etc/mfabridge/mfabridge.yaml and the state directory at /var/lib/mfabridge.
#   docker build -t mfabridge .
#   docker run -p 1812:1812/udp -v /etc/mfabridge:/etc/mfabridge:ro \
#     -v mfabridge-state:/var/lib/mfabridge mfabridge
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/mfabridge ./cmd/mfabridge

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mfabridge /usr/local/bin/mfabridge
USER nonroot:nonroot
VOLUME ["/var/lib/mfabridge"]
EXPOSE 1812/udp 2083/tcp 9812/tcp
ENTRYPOINT ["/usr/local/bin/mfabridge"]
CMD ["serve", "--config", "/etc/mfabridge/mfabridge.yaml"]
