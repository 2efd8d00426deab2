"""Drives Hearth's tool calling with the official `openai` client, the way applications do:
a required call, the same call streamed through the client's own stream helper (which
reassembles `delta.tool_calls`), the SDK's message object sent back with the tool's result,
and a reply parsed into a Pydantic model (`response_format` with a strict JSON schema).

Reads OPENAI_BASE_URL and OPENAI_API_KEY; prints one JSON line with what it saw.
"""
import json

from openai import OpenAI
from pydantic import BaseModel

client = OpenAI()
model = client.models.list().data[0].id
tools = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city, e.g. Paris"}},
            "required": ["city"],
        },
    },
}]
question = [{"role": "user", "content": "What is the weather like in Paris right now?"}]

first = client.chat.completions.create(
    model=model, messages=question, tools=tools, tool_choice="required", temperature=0,
)
call = first.choices[0].message.tool_calls[0]

chunks = 0
with client.chat.completions.stream(
    model=model, messages=question, tools=tools, tool_choice="required", temperature=0,
) as stream:
    for event in stream:
        chunks += event.type == "chunk"
    streamed = stream.get_final_completion().choices[0].message.tool_calls[0]

messages = question + [
    first.choices[0].message,
    {"role": "tool", "tool_call_id": call.id,
     "content": json.dumps({"city": "Paris", "temperature_celsius": 23, "sky": "sunny"})},
]
answer = client.chat.completions.create(
    model=model, messages=messages, tools=tools, tool_choice="none", temperature=0,
)
answer_text = answer.choices[0].message.content or ""


class WeatherReport(BaseModel):
    city: str
    temperature: float
    summary: str


parsed = client.chat.completions.parse(
    model=model,
    messages=[{"role": "user", "content": "Write today's weather report for Paris."}],
    response_format=WeatherReport,
    temperature=0,
    max_tokens=200,
).choices[0].message.parsed

print(json.dumps({
    "call": {"name": call.function.name, "arguments": json.loads(call.function.arguments)},
    "streamed_call": {"name": streamed.function.name, "arguments": json.loads(streamed.function.arguments)},
    "stream_chunks": chunks,
    "answer": answer_text,
    "answer_finish_reason": answer.choices[0].finish_reason,
    "answer_uses_result": "23" in answer_text or "sunny" in answer_text.lower(),
    "parsed": parsed.model_dump(),
}))
