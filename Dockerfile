# logx-mock in a container: what the README's docker-compose recipe builds (`build: .`).
# Only the server and its command line: pyproject.toml, the README (its long description) and
# the two packages. Docker is not run by the test suite; tests/test_tls.py checks that these
# COPY lines hold everything `pip install .` reads.
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mockserver mockserver
COPY pytest_plugin pytest_plugin
RUN pip install --no-cache-dir .
WORKDIR /
EXPOSE 8080 443
# --host 0.0.0.0 needs an admin token: set LOGX_MOCK_ADMIN_TOKEN (never --admin-token).
CMD ["logx-mock", "serve", "--host", "0.0.0.0", "--memory"]
