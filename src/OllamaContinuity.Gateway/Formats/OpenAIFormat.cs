using System.Buffers;
using System.Text.Json;
using OllamaContinuity.Failover;

namespace OllamaContinuity.Gateway.Formats;

/// <summary>OpenAI chat completions (<c>POST /v1/chat/completions</c>): JSON, or SSE chunks ending in <c>data: [DONE]</c>.</summary>
internal sealed class OpenAIFormat : ApiFormat
{
    public static readonly OpenAIFormat Instance = new();

    public override string Name => "openai";

    public override string StreamContentType => "text/event-stream; charset=utf-8";

    public override ChatCall Parse(JsonElement root)
    {
        RejectForeign(root, "OpenAI chat completions",
            ("system", "put the system prompt in a message with role 'system'"),
            ("prompt", "that is the legacy completions API; send 'messages'"),
            ("options", "that is Ollama's; use 'temperature' and 'max_tokens'"));
        var model = RequireModel(root);
        if (root.TryGetProperty("tools", out var tools) && tools.ValueKind == JsonValueKind.Array && tools.GetArrayLength() > 0 || root.TryGetProperty("functions", out _))
        {
            throw new GatewayException(400, "Tool calling is not supported by the gateway (the same request must work on the local Ollama model).", "unsupported_field");
        }

        if (OptInt(root, "n", 1, 128) is > 1)
        {
            throw new GatewayException(400, "'n' greater than 1 is not supported by the gateway.", "unsupported_field");
        }

        var messages = ReadMessages(root, r => r switch
        {
            "system" or "developer" => "system",
            "user" => "user",
            "assistant" => "assistant",
            _ => null,
        }, "system, developer, user or assistant");
        var maxTokens = OptInt(root, "max_completion_tokens", 1, 10_000_000) ?? OptInt(root, "max_tokens", 1, 10_000_000);
        var includeUsage = root.TryGetProperty("stream_options", out var so) && so.ValueKind == JsonValueKind.Object && OptBool(so, "include_usage") == true;
        return new ChatCall(messages, null, model, OptBool(root, "stream") ?? false, maxTokens, OptNumber(root, "temperature", 0, 2)) { IncludeUsage = includeUsage };
    }

    public override void WriteError(Utf8JsonWriter w, int status, string message, string? code)
    {
        w.WriteStartObject();
        w.WriteStartObject("error");
        w.WriteString("message", message);
        w.WriteString("type", status switch
        {
            400 or 404 or 413 or 422 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            429 => "rate_limit_error",
            _ => "server_error",
        });
        w.WriteNull("param");
        if (code is null)
        {
            w.WriteNull("code");
        }
        else
        {
            w.WriteString("code", code);
        }

        w.WriteEndObject();
        w.WriteEndObject();
    }

    public override void WriteWhole(Utf8JsonWriter w, AiResponse response, ChatCall call)
    {
        w.WriteStartObject();
        w.WriteString("id", "chatcmpl-" + response.RequestId);
        w.WriteString("object", "chat.completion");
        w.WriteNumber("created", Unix(response.Timestamp));
        w.WriteString("model", response.Model);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        w.WriteStartObject("message");
        w.WriteString("role", "assistant");
        w.WriteString("content", response.Text);
        w.WriteNull("refusal");
        w.WriteEndObject();
        w.WriteNull("logprobs");
        w.WriteString("finish_reason", "stop");
        w.WriteEndObject();
        w.WriteEndArray();
        WriteUsage(w, response);
        w.WriteEndObject();
    }

    public override void StreamStart(IBufferWriter<byte> output, StreamState s) =>
        Chunk(output, s, w =>
        {
            w.WriteStartObject("delta");
            w.WriteString("role", "assistant");
            w.WriteString("content", "");
            w.WriteEndObject();
            w.WriteNull("finish_reason");
        });

    public override void StreamDelta(IBufferWriter<byte> output, StreamState s, string text) =>
        Chunk(output, s, w =>
        {
            w.WriteStartObject("delta");
            w.WriteString("content", text);
            w.WriteEndObject();
            w.WriteNull("finish_reason");
        });

    public override void StreamEnd(IBufferWriter<byte> output, StreamState s, AiResponse response)
    {
        Chunk(output, s, w =>
        {
            w.WriteStartObject("delta");
            w.WriteEndObject();
            w.WriteString("finish_reason", "stop");
        });
        if (s.IncludeUsage)
        {
            WriteJsonLine(output, w =>
            {
                Head(w, s);
                w.WriteStartArray("choices");
                w.WriteEndArray();
                WriteUsage(w, response);
                w.WriteEndObject();
            }, "data: "u8, "\n\n"u8);
        }

        output.Write("data: [DONE]\n\n"u8);
    }

    public override void StreamError(IBufferWriter<byte> output, StreamState s, int status, string message, string? code) =>
        // The OpenAI SDKs raise an APIError for a chunk that carries "error".
        WriteJsonLine(output, w => WriteError(w, status, message, code), "data: "u8, "\n\n"u8);

    private static void Chunk(IBufferWriter<byte> output, StreamState s, Action<Utf8JsonWriter> choice) =>
        WriteJsonLine(output, w =>
        {
            Head(w, s);
            w.WriteStartArray("choices");
            w.WriteStartObject();
            w.WriteNumber("index", 0);
            choice(w);
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteEndObject();
        }, "data: "u8, "\n\n"u8);

    private static void Head(Utf8JsonWriter w, StreamState s)
    {
        w.WriteStartObject();
        w.WriteString("id", s.ChunkId);
        w.WriteString("object", "chat.completion.chunk");
        w.WriteNumber("created", Unix(s.Started));
        w.WriteString("model", s.Model);
    }

    private static void WriteUsage(Utf8JsonWriter w, AiResponse r)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", r.InputTokens ?? 0);
        w.WriteNumber("completion_tokens", r.OutputTokens ?? 0);
        w.WriteNumber("total_tokens", (r.InputTokens ?? 0) + (r.OutputTokens ?? 0));
        w.WriteEndObject();
    }
}
