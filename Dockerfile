# Raccord gateway image: slim Python, non-root, configuration/certificates/data as volumes.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY protocols ./protocols
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 RACCORD_CONFIG=/config/raccord.yaml
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && groupadd --system --gid 10001 raccord \
    && useradd --system --uid 10001 --gid raccord --home-dir /data --no-create-home raccord \
    && mkdir -p /config /certs /data && chown raccord:raccord /data
USER raccord:raccord
VOLUME ["/config", "/certs", "/data"]
# admin (health, readiness, metrics, API), AS2 HTTP/HTTPS, SFTP, PeSIT over TLS
EXPOSE 8480 4080 4443 2222 1762
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8480/readyz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["raccord"]
CMD ["serve", "--config", "/config/raccord.yaml"]
