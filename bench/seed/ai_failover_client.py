#!/usr/bin/env python3
# ai_failover_client.py
# A failover client that tries cloud AI first, then falls back to local Ollama.
#
# (bench/seed: the seed's listing from /work/shared/seed/ai-continuity-with-ollama-part4.txt, line 197, where its
# line breaks were lost; re-broken into lines, with no other change. The bench imports it: see loop.py.)
import requests
import logging
import os
from typing import Optional

# Configuration via environment variables
CLOUD_API_URL = os.getenv("CLOUD_API_URL", "https://api.openai.com/v1/chat/completions")
CLOUD_API_KEY = os.getenv("CLOUD_API_KEY")
OLLAMA_URL = os.getenv("OLLAMA_URL", "http://localhost:11434/api/chat")
OLLAMA_MODEL = os.getenv("OLLAMA_MODEL", "llama3.1:8b")
CLOUD_TIMEOUT = int(os.getenv("CLOUD_TIMEOUT", "15"))
OLLAMA_TIMEOUT = int(os.getenv("OLLAMA_TIMEOUT", "60"))

logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(levelname)s] %(message)s")


def call_cloud(messages: list, model: str = "gpt-4o") -> Optional[str]:
    """Try the cloud AI provider. Returns response text or None on failure."""
    try:
        r = requests.post(
            CLOUD_API_URL,
            headers={"Authorization": f"Bearer {CLOUD_API_KEY}"},
            json={"model": model, "messages": messages},
            timeout=CLOUD_TIMEOUT
        )
        if r.status_code == 200:
            return r.json()["choices"][0]["message"]["content"]
        logging.warning(f"Cloud returned status {r.status_code}")
        return None
    except requests.exceptions.RequestException as e:
        logging.warning(f"Cloud request failed: {e}")
        return None


def call_ollama(messages: list, model: str = OLLAMA_MODEL) -> Optional[str]:
    """Try the local Ollama instance. Returns response text or None on failure."""
    try:
        r = requests.post(
            OLLAMA_URL,
            json={"model": model, "messages": messages, "stream": False},
            timeout=OLLAMA_TIMEOUT
        )
        if r.status_code == 200:
            return r.json()["message"]["content"]
        logging.error(f"Ollama returned status {r.status_code}")
        return None
    except requests.exceptions.RequestException as e:
        logging.error(f"Ollama request failed: {e}")
        return None


def ai_request(messages: list, cloud_model: str = "gpt-4o") -> dict:
    """
    Main entry point. Tries cloud first, falls back to Ollama on failure.
    Returns a dict with the response text and which backend served it.
    """
    response = call_cloud(messages, model=cloud_model)
    if response is not None:
        logging.info("Served by cloud")
        return {"backend": "cloud", "text": response}

    logging.info("Cloud unavailable, falling back to Ollama")
    response = call_ollama(messages)
    if response is not None:
        return {"backend": "ollama", "text": response}

    logging.error("Both cloud and Ollama failed")
    return {"backend": "none", "text": None, "error": "All backends failed"}


# Usage example
if __name__ == "__main__":
    result = ai_request([
        {"role": "user", "content": "Summarize the benefits of local AI in 50 words."}
    ])
    print(f"[{result['backend']}] {result['text']}")
