using System.Text.Json;

namespace OllamaContinuity.Failover.Protocols;

/// <summary>OpenAI-compatible chat completions: Bearer key, <c>choices[0].message.content</c>, SSE chunks ending in <c>data: [DONE]</c>.</summary>
internal sealed class OpenAIProtocol : ChatProtocol
{
    public static readonly OpenAIProtocol Instance = new();

    protected override void WriteBody(Utf8JsonWriter w, BackendEndpoint endpoint, AiRequest request)
    {
        w.WriteString("model", endpoint.Model);
        WriteMessages(w, request, includeSystem: true);
        w.WriteBoolean("stream", request.Stream);
        if (request.Stream)
        {
            // Without this, a streamed answer has no token counts.
            w.WriteStartObject("stream_options");
            w.WriteBoolean("include_usage", true);
            w.WriteEndObject();
        }

        if (request.MaxTokens is int max)
        {
            w.WriteNumber("max_tokens", max);
        }

        if (request.Temperature is double t)
        {
            w.WriteNumber("temperature", t);
        }
    }

    protected override void AddHeaders(HttpRequestMessage message, BackendEndpoint endpoint)
    {
        if (endpoint.HasApiKey)
        {
            message.Headers.TryAddWithoutValidation("Authorization", "Bearer " + endpoint.ApiKey);
        }
    }

    public override ParsedChunk ParseBody(ReadOnlySpan<byte> body)
    {
        using var doc = TryParse(body);
        if (doc is null || doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            return new(ChunkKind.Malformed, Error: "the body is not a JSON object");
        }

        var root = doc.RootElement;
        if (root.TryGetProperty("error", out _))
        {
            return new(ChunkKind.Error, Error: ParseError(root.GetRawText()).Message ?? "error object in a 200 response");
        }

        if (!root.TryGetProperty("choices", out var choices) || choices.ValueKind != JsonValueKind.Array || choices.GetArrayLength() == 0)
        {
            return new(ChunkKind.Malformed, Error: "no choices in the response");
        }

        var choice = choices[0];
        var finish = Str(choice, "finish_reason");
        if (finish == "content_filter")
        {
            return new(ChunkKind.Refusal, Error: "the provider's content filter refused the request");
        }

        if (!choice.TryGetProperty("message", out var message))
        {
            return new(ChunkKind.Malformed, Error: "no message in the first choice");
        }

        if (message.TryGetProperty("refusal", out var refusal) && refusal.ValueKind == JsonValueKind.String)
        {
            return new(ChunkKind.Refusal, Error: "the model refused: " + refusal.GetString());
        }

        root.TryGetProperty("usage", out var usage);
        return new(ChunkKind.Text, Str(message, "content"), Str(root, "model"), Int(usage, "prompt_tokens"), Int(usage, "completion_tokens"),
            FinishReason: finish, Thinking: Reasoning(message));
    }

    public override ParsedChunk ParseStreamLine(string line, ref string? state)
    {
        if (!line.StartsWith("data:", StringComparison.Ordinal))
        {
            return default; // comments (": keep-alive"), event names, blank separators
        }

        var data = line.AsSpan(5).Trim();
        if (data.SequenceEqual("[DONE]"))
        {
            return new(ChunkKind.Done);
        }

        using var doc = TryParse(data.ToString());
        if (doc is null || doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            return new(ChunkKind.Malformed, Error: "a stream chunk is not JSON");
        }

        var root = doc.RootElement;
        if (root.TryGetProperty("error", out _))
        {
            return new(ChunkKind.Error, Error: ParseError(root.GetRawText()).Message ?? "in-band stream error");
        }

        if (!root.TryGetProperty("choices", out var choices) || choices.ValueKind != JsonValueKind.Array)
        {
            return new(ChunkKind.Malformed, Error: "a stream chunk has no choices");
        }

        if (choices.GetArrayLength() == 0)
        {
            root.TryGetProperty("usage", out var u);
            return new(ChunkKind.None, Model: Str(root, "model"), InputTokens: Int(u, "prompt_tokens"), OutputTokens: Int(u, "completion_tokens"));
        }

        var choice = choices[0];
        var finish = Str(choice, "finish_reason");
        if (finish == "content_filter")
        {
            return new(ChunkKind.Refusal, Error: "the provider's content filter stopped the answer");
        }

        choice.TryGetProperty("delta", out var delta);
        if (Str(delta, "refusal") is { Length: > 0 } refusal)
        {
            return new(ChunkKind.Refusal, Error: "the model refused: " + refusal);
        }

        // Some compatible servers put the usage on the finish chunk rather than on a chunk of its own.
        root.TryGetProperty("usage", out var usage);
        var text = Str(delta, "content");
        return new(text is null ? ChunkKind.None : ChunkKind.Text, text, Str(root, "model"), Int(usage, "prompt_tokens"), Int(usage, "completion_tokens"),
            FinishReason: finish, Thinking: Reasoning(delta));
    }

    // OpenAI-compatible reasoning servers (Ollama /v1, vLLM, DeepSeek) name it either way.
    private static string? Reasoning(JsonElement e) => Str(e, "reasoning_content") ?? Str(e, "reasoning");
}
