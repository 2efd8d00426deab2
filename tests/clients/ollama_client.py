"""Drives Hearth's Ollama API with the official `ollama` client, the way Home Assistant
and scripts do: list, show, ps and pull; a streamed chat; a tool given as a Python function,
called (whole and streamed), its result sent back with the client's own message object;
generate; embed; and the client's error for a model that is not installed.

Reads HEARTH_URL and HEARTH_TOKEN (sent as `Authorization: Bearer`, as Home Assistant's
API key is); prints one JSON line with what it saw.
"""
import json
import os

import ollama

client = ollama.Client(
    host=os.environ["HEARTH_URL"],
    headers={"Authorization": f"Bearer {os.environ['HEARTH_TOKEN']}"},
)
models = [m.model for m in client.list().models]
model = models[0]
shown = client.show(model)
running = [m.model for m in client.ps().models]
pulled = client.pull(model).status


def get_weather(city: str) -> str:
    """Get the current weather in a city.

    Args:
      city: The city, e.g. Paris
    """
    return json.dumps({"city": city, "temperature_celsius": 23, "sky": "sunny"})


chunks, streamed_text, stream_done_reason = 0, "", None
for part in client.chat(
    model=model,
    messages=[{"role": "user", "content": "Say hello."}],
    stream=True,
    options={"temperature": 0, "num_predict": 40},
):
    chunks += 1
    streamed_text += part.message.content or ""
    if part.done:
        stream_done_reason = part.done_reason

question = [{"role": "user", "content": "What is the weather like in Paris right now?"}]
first = client.chat(model=model, messages=question, tools=[get_weather], options={"temperature": 0})
call = first.message.tool_calls[0]

streamed_call = None
for part in client.chat(
    model=model, messages=question, tools=[get_weather], stream=True, options={"temperature": 0}
):
    if part.message.tool_calls:
        streamed_call = part.message.tool_calls[0]

messages = question + [
    first.message,
    {"role": "tool", "tool_name": call.function.name, "content": get_weather(**call.function.arguments)},
]
answer = client.chat(model=model, messages=messages, options={"temperature": 0, "num_predict": 60})
answer_text = answer.message.content or ""

generated = client.generate(model=model, prompt="Say hello.", options={"num_predict": 10}).response
embedded = client.embed(model="all-minilm-l6-v2", input=["The cat sat.", "A dog barked."])

try:
    client.chat(model="llama3.2", messages=question)
    missing_status = None
except ollama.ResponseError as e:
    missing_status = e.status_code

print(json.dumps({
    "models": models,
    "capabilities": shown.capabilities,
    "details": shown.details.model_dump(),
    "running": running,
    "pull": pulled,
    "stream_chunks": chunks,
    "streamed_text": streamed_text,
    "stream_done_reason": stream_done_reason,
    "call": {"name": call.function.name, "arguments": dict(call.function.arguments)},
    "streamed_call": streamed_call and {
        "name": streamed_call.function.name, "arguments": dict(streamed_call.function.arguments),
    },
    "answer": answer_text,
    "answer_uses_result": "23" in answer_text or "sunny" in answer_text.lower(),
    "generated": generated,
    "embedding_dims": [len(e) for e in embedded.embeddings],
    "missing_model_status": missing_status,
}))
