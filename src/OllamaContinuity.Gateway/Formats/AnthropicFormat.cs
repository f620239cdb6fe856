using System.Buffers;
using System.Text.Json;
using OllamaContinuity.Failover;

namespace OllamaContinuity.Gateway.Formats;

/// <summary>Anthropic Messages (<c>POST /v1/messages</c>): JSON, or SSE events from <c>message_start</c> to <c>message_stop</c>.</summary>
internal sealed class AnthropicFormat : ApiFormat
{
    public static readonly AnthropicFormat Instance = new();

    public override string Name => "anthropic";

    public override string StreamContentType => "text/event-stream; charset=utf-8";

    public override ChatCall Parse(JsonElement root)
    {
        RejectForeign(root, "Anthropic Messages",
            ("prompt", "send 'messages'"),
            ("options", "that is Ollama's; use 'temperature' and 'max_tokens'"),
            ("max_completion_tokens", "that is OpenAI's; use 'max_tokens'"),
            ("stream_options", "that is OpenAI's"),
            ("n", "that is OpenAI's"));
        var model = RequireModel(root);
        if (root.TryGetProperty("tools", out var tools) && tools.ValueKind == JsonValueKind.Array && tools.GetArrayLength() > 0)
        {
            throw new GatewayException(400, "Tool use is not supported by the gateway (the same request must work on the local Ollama model).", "unsupported_field");
        }

        var maxTokens = OptInt(root, "max_tokens", 1, 10_000_000) ?? throw new GatewayException(400, "'max_tokens' is required.", "missing_max_tokens");
        string? system = null;
        if (root.TryGetProperty("system", out var sys) && sys.ValueKind != JsonValueKind.Null)
        {
            system = sys.ValueKind == JsonValueKind.String ? sys.GetString() : ReadContent(sys, -1);
        }

        // Anthropic has no system role inside messages: an OpenAI-shaped request is refused, as the API does.
        var messages = ReadMessages(root, r => r is "user" or "assistant" ? r : null, "user or assistant; the system prompt is the top-level 'system'");
        return new ChatCall(messages, string.IsNullOrEmpty(system) ? null : system, model, OptBool(root, "stream") ?? false, maxTokens, OptNumber(root, "temperature", 0, 1));
    }

    public override void WriteError(Utf8JsonWriter w, int status, string message, string? code)
    {
        w.WriteStartObject();
        w.WriteString("type", "error");
        w.WriteStartObject("error");
        w.WriteString("type", ErrorType(status));
        w.WriteString("message", message);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static string ErrorType(int status) => status switch
    {
        400 or 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 or 503 => "overloaded_error",
        _ => "api_error",
    };

    public override void WriteWhole(Utf8JsonWriter w, AiResponse response, ChatCall call)
    {
        w.WriteStartObject();
        w.WriteString("id", "msg_" + response.RequestId);
        w.WriteString("type", "message");
        w.WriteString("role", "assistant");
        w.WriteString("model", response.Model);
        w.WriteStartArray("content");
        w.WriteStartObject();
        w.WriteString("type", "text");
        w.WriteString("text", response.Text);
        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteString("stop_reason", "end_turn");
        w.WriteNull("stop_sequence");
        w.WriteStartObject("usage");
        w.WriteNumber("input_tokens", response.InputTokens ?? 0);
        w.WriteNumber("output_tokens", response.OutputTokens ?? 0);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    public override void StreamStart(IBufferWriter<byte> output, StreamState s)
    {
        Event(output, "message_start", w =>
        {
            w.WriteString("type", "message_start");
            w.WriteStartObject("message");
            w.WriteString("id", "msg_" + s.RequestId);
            w.WriteString("type", "message");
            w.WriteString("role", "assistant");
            w.WriteString("model", s.Model);
            w.WriteStartArray("content");
            w.WriteEndArray();
            w.WriteNull("stop_reason");
            w.WriteNull("stop_sequence");
            w.WriteStartObject("usage");
            w.WriteNumber("input_tokens", 0);
            w.WriteNumber("output_tokens", 0);
            w.WriteEndObject();
            w.WriteEndObject();
        });
        Event(output, "content_block_start", w =>
        {
            w.WriteString("type", "content_block_start");
            w.WriteNumber("index", 0);
            w.WriteStartObject("content_block");
            w.WriteString("type", "text");
            w.WriteString("text", "");
            w.WriteEndObject();
        });
    }

    public override void StreamDelta(IBufferWriter<byte> output, StreamState s, string text) =>
        Event(output, "content_block_delta", w =>
        {
            w.WriteString("type", "content_block_delta");
            w.WriteNumber("index", 0);
            w.WriteStartObject("delta");
            w.WriteString("type", "text_delta");
            w.WriteString("text", text);
            w.WriteEndObject();
        });

    public override void StreamEnd(IBufferWriter<byte> output, StreamState s, AiResponse response)
    {
        Event(output, "content_block_stop", w =>
        {
            w.WriteString("type", "content_block_stop");
            w.WriteNumber("index", 0);
        });
        Event(output, "message_delta", w =>
        {
            w.WriteString("type", "message_delta");
            w.WriteStartObject("delta");
            w.WriteString("stop_reason", "end_turn");
            w.WriteNull("stop_sequence");
            w.WriteEndObject();
            w.WriteStartObject("usage");
            w.WriteNumber("input_tokens", response.InputTokens ?? 0);
            w.WriteNumber("output_tokens", response.OutputTokens ?? 0);
            w.WriteEndObject();
        });
        Event(output, "message_stop", w => w.WriteString("type", "message_stop"));
    }

    public override void StreamError(IBufferWriter<byte> output, StreamState s, int status, string message, string? code) =>
        WriteJsonLine(output, w => WriteError(w, status, message, code), "event: error\ndata: "u8, "\n\n"u8);

    private static void Event(IBufferWriter<byte> output, string name, Action<Utf8JsonWriter> body)
    {
        output.Write("event: "u8);
        output.Advance(System.Text.Encoding.ASCII.GetBytes(name, output.GetSpan(name.Length)));
        WriteJsonLine(output, w =>
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }, "\ndata: "u8, "\n\n"u8);
    }
}
