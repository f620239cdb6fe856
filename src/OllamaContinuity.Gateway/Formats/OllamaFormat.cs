using System.Buffers;
using System.Globalization;
using System.Text.Json;
using OllamaContinuity.Failover;

namespace OllamaContinuity.Gateway.Formats;

/// <summary>
/// Ollama's <c>POST /api/chat</c> and <c>POST /api/generate</c>: NDJSON objects, the last with <c>"done":true</c>;
/// streaming unless the request says <c>"stream":false</c>; errors as <c>{"error":"..."}</c>.
/// </summary>
internal sealed class OllamaFormat : ApiFormat
{
    public static readonly OllamaFormat Chat = new(generate: false);
    public static readonly OllamaFormat Generate = new(generate: true);

    private readonly bool _generate;

    private OllamaFormat(bool generate) => _generate = generate;

    public override string Name => _generate ? "ollama-generate" : "ollama-chat";

    public override string StreamContentType => "application/x-ndjson";

    public override ChatCall Parse(JsonElement root)
    {
        RejectForeign(root, "Ollama",
            ("max_tokens", "use options.num_predict"),
            ("max_completion_tokens", "use options.num_predict"),
            ("temperature", "use options.temperature"),
            ("stream_options", "that is OpenAI's"));
        var model = RequireModel(root);
        if (root.TryGetProperty("tools", out var tools) && tools.ValueKind == JsonValueKind.Array && tools.GetArrayLength() > 0)
        {
            throw new GatewayException(400, "Tool calling is not supported by the gateway.", "unsupported_field");
        }

        root.TryGetProperty("options", out var options);
        if (options.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null or JsonValueKind.Object))
        {
            throw new GatewayException(400, "'options' must be an object.", "invalid_type");
        }

        var temperature = OptNumber(options, "temperature", 0, 2);
        var numPredict = OptInt(options, "num_predict", -2, 10_000_000);
        int? maxTokens = numPredict is > 0 ? numPredict : null;
        var stream = OptBool(root, "stream") ?? true;
        if (!_generate)
        {
            if (root.TryGetProperty("prompt", out _))
            {
                throw new GatewayException(400, "'prompt' belongs to /api/generate; /api/chat takes 'messages'.", "unsupported_field");
            }

            var messages = ReadMessages(root, r => r is "system" or "user" or "assistant" ? r : null, "system, user or assistant");
            return new ChatCall(messages, null, model, stream, maxTokens, temperature);
        }

        if (root.TryGetProperty("messages", out _))
        {
            throw new GatewayException(400, "'messages' belongs to /api/chat; /api/generate takes 'prompt'.", "unsupported_field");
        }

        if (!root.TryGetProperty("prompt", out var p) || p.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(p.GetString()))
        {
            throw new GatewayException(400, "'prompt' is required and must be a non-empty string.", "empty_prompt");
        }

        if (root.TryGetProperty("images", out var images) && images.ValueKind == JsonValueKind.Array && images.GetArrayLength() > 0)
        {
            throw new GatewayException(400, "The request has images; the gateway serves text only.", "unsupported_content");
        }

        string? system = root.TryGetProperty("system", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString() : null;
        return new ChatCall([new ChatMessage("user", p.GetString()!)], string.IsNullOrEmpty(system) ? null : system, model, stream, maxTokens, temperature);
    }

    public override void WriteError(Utf8JsonWriter w, int status, string message, string? code)
    {
        w.WriteStartObject();
        w.WriteString("error", message);
        w.WriteEndObject();
    }

    public override void WriteWhole(Utf8JsonWriter w, AiResponse response, ChatCall call)
    {
        w.WriteStartObject();
        Head(w, response.Model, response.Timestamp);
        WriteText(w, response.Text);
        Done(w, response);
        w.WriteEndObject();
    }

    public override void StreamStart(IBufferWriter<byte> output, StreamState s)
    {
        // Ollama sends no preamble: the first line already carries text.
    }

    public override void StreamDelta(IBufferWriter<byte> output, StreamState s, string text) =>
        WriteJsonLine(output, w =>
        {
            w.WriteStartObject();
            Head(w, s.Model, DateTimeOffset.UtcNow);
            WriteText(w, text);
            w.WriteBoolean("done", false);
            w.WriteEndObject();
        }, default, "\n"u8);

    public override void StreamEnd(IBufferWriter<byte> output, StreamState s, AiResponse response) =>
        WriteJsonLine(output, w =>
        {
            w.WriteStartObject();
            Head(w, s.Model, DateTimeOffset.UtcNow);
            WriteText(w, "");
            Done(w, response);
            w.WriteEndObject();
        }, default, "\n"u8);

    public override void StreamError(IBufferWriter<byte> output, StreamState s, int status, string message, string? code) =>
        WriteJsonLine(output, w => WriteError(w, status, message, code), default, "\n"u8);

    private static void Head(Utf8JsonWriter w, string model, DateTimeOffset at)
    {
        w.WriteString("model", model);
        w.WriteString("created_at", at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture));
    }

    private void WriteText(Utf8JsonWriter w, string text)
    {
        if (_generate)
        {
            w.WriteString("response", text);
            return;
        }

        w.WriteStartObject("message");
        w.WriteString("role", "assistant");
        w.WriteString("content", text);
        w.WriteEndObject();
    }

    private static void Done(Utf8JsonWriter w, AiResponse r)
    {
        w.WriteBoolean("done", true);
        w.WriteString("done_reason", "stop");
        var ns = (long)(r.LatencyMs * 1_000_000);
        w.WriteNumber("total_duration", ns);
        w.WriteNumber("load_duration", 0);
        w.WriteNumber("prompt_eval_count", r.InputTokens ?? 0);
        w.WriteNumber("prompt_eval_duration", 0);
        w.WriteNumber("eval_count", r.OutputTokens ?? 0);
        w.WriteNumber("eval_duration", ns);
    }
}
