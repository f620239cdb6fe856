using System.Text.Json;

namespace OllamaContinuity.Failover.Protocols;

/// <summary>Ollama <c>/api/chat</c>: NDJSON objects, the last with <c>"done":true</c>; errors as <c>{"error":"..."}</c>, in-band after a 200.</summary>
internal sealed class OllamaProtocol : ChatProtocol
{
    public static readonly OllamaProtocol Instance = new();

    protected override void WriteBody(Utf8JsonWriter w, BackendEndpoint endpoint, AiRequest request)
    {
        w.WriteString("model", endpoint.Model);
        WriteMessages(w, request, includeSystem: true);
        // Ollama streams unless told otherwise: always say which.
        w.WriteBoolean("stream", request.Stream);
        if (request.Temperature is not null || request.MaxTokens is not null)
        {
            w.WriteStartObject("options");
            if (request.Temperature is double t)
            {
                w.WriteNumber("temperature", t);
            }

            if (request.MaxTokens is int max)
            {
                w.WriteNumber("num_predict", max);
            }

            w.WriteEndObject();
        }
    }

    public override ParsedChunk ParseBody(ReadOnlySpan<byte> body)
    {
        using var doc = TryParse(body);
        return doc is null ? new(ChunkKind.Malformed, Error: "the body is not a JSON object") : Read(doc.RootElement, streaming: false);
    }

    public override ParsedChunk ParseStreamLine(string line, ref string? state)
    {
        if (string.IsNullOrWhiteSpace(line))
        {
            return default;
        }

        using var doc = TryParse(line);
        return doc is null ? new(ChunkKind.Malformed, Error: "a stream line is not JSON") : Read(doc.RootElement, streaming: true);
    }

    private static ParsedChunk Read(JsonElement root, bool streaming)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            return new(ChunkKind.Malformed, Error: "not a JSON object");
        }

        if (root.TryGetProperty("error", out var err))
        {
            return new(ChunkKind.Error, Error: err.ValueKind == JsonValueKind.String ? err.GetString() : err.GetRawText());
        }

        var hasMessage = root.TryGetProperty("message", out var m);
        var text = hasMessage ? Str(m, "content") : null;
        var thinking = hasMessage ? Str(m, "thinking") : null;
        var done = root.TryGetProperty("done", out var d) && d.ValueKind == JsonValueKind.True;
        // done_reason: stop, length, load, unload.
        var reason = done ? Str(root, "done_reason") : null;
        if (!streaming)
        {
            return text is null || !done
                ? new(ChunkKind.Malformed, Error: "no complete message in the response")
                : new(ChunkKind.Text, text, Str(root, "model"), Int(root, "prompt_eval_count"), Int(root, "eval_count"), FinishReason: reason, Thinking: thinking);
        }

        if (done)
        {
            return new(ChunkKind.Done, text, Str(root, "model"), Int(root, "prompt_eval_count"), Int(root, "eval_count"), FinishReason: reason, Thinking: thinking);
        }

        return text is null && thinking is null
            ? new(ChunkKind.Malformed, Error: "a stream line has no message")
            : new(text is null ? ChunkKind.None : ChunkKind.Text, text, Str(root, "model"), Thinking: thinking);
    }
}
