"""Streams one reply and embeds two texts with the official `openai` client.

Reads OPENAI_BASE_URL and OPENAI_API_KEY; prints one JSON line summarising the stream.
"""
import json

from openai import OpenAI

client = OpenAI()
models = client.models.list()
model = models.data[0].id
stream = client.chat.completions.create(
    model=model,
    messages=[
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Say hello in one short sentence."},
    ],
    max_tokens=24,
    stream=True,
)
chunks, text, finish_reason = 0, "", None
for chunk in stream:
    chunks += 1
    choice = chunk.choices[0]
    text += choice.delta.content or ""
    finish_reason = choice.finish_reason or finish_reason
vectors = client.embeddings.create(model="default", input=["hello", "a warm hearth"]).data
print(json.dumps({
    "model": model, "chunks": chunks, "text": text, "finish_reason": finish_reason,
    "embedding_dims": [len(v.embedding) for v in vectors],
}))
