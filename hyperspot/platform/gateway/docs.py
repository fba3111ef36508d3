"""The interactive API docs (Swagger UI), served from the installed package: no internet needed."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

import falcon
import falcon.asgi

ASSETS: dict[str, str] = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>HyperSpot API</title>
  <link rel="icon" href="/docs/assets/favicon-32x32.png">
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});
  </script>
</body>
</html>
"""


def _asset_dir() -> Traversable:
    return files("swagger_ui") / "static"


class DocsPageResource:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.text = PAGE


class DocsAssetResource:
    def __init__(self) -> None:
        self._cache: dict[str, bytes] = {}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, name: str) -> None:
        media = ASSETS.get(name)
        if media is None:
            raise falcon.HTTPNotFound(description=f"no docs asset named {name!r}")
        if name not in self._cache:
            self._cache[name] = (_asset_dir() / name).read_bytes()
        resp.content_type = media
        resp.cache_control = ["public", "max-age=86400"]
        resp.data = self._cache[name]
