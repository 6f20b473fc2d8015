"""The yardstick of bench/hot_paths.py: a FastAPI hello-world, run by uvicorn exactly like the
services (same flags), behind the same Nginx with the same upstream settings."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}
