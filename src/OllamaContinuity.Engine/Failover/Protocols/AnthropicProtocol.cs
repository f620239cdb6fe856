using System.Text;
using System.Text.Json;

namespace OllamaContinuity.Failover.Protocols;

/// <summary>Anthropic Messages: <c>x-api-key</c>, <c>anthropic-version</c>, content blocks, SSE events ending in <c>message_stop</c>.</summary>
internal sealed class AnthropicProtocol : ChatProtocol
{
    public const string ApiVersion = "2023-06-01";
    public const int DefaultMaxTokens = 1024;
    public static readonly AnthropicProtocol Instance = new();

    protected override void WriteBody(Utf8JsonWriter w, BackendEndpoint endpoint, AiRequest request)
    {
        w.WriteString("model", endpoint.Model);
        w.WriteNumber("max_tokens", request.MaxTokens ?? DefaultMaxTokens);
        var system = string.Join("\n\n", new[] { request.SystemPrompt }
            .Concat(request.Messages.Where(m => m.Role == "system").Select(m => m.Content))
            .Where(s => !string.IsNullOrEmpty(s)));
        if (system.Length > 0)
        {
            w.WriteString("system", system);
        }

        WriteMessages(w, request, includeSystem: false);
        if (request.Stream)
        {
            w.WriteBoolean("stream", true);
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
            message.Headers.TryAddWithoutValidation("x-api-key", endpoint.ApiKey);
        }

        message.Headers.TryAddWithoutValidation("anthropic-version", ApiVersion);
    }

    public override ParsedChunk ParseBody(ReadOnlySpan<byte> body)
    {
        using var doc = TryParse(body);
        if (doc is null || doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            return new(ChunkKind.Malformed, Error: "the body is not a JSON object");
        }

        var root = doc.RootElement;
        if (Str(root, "type") == "error")
        {
            return new(ChunkKind.Error, Error: ParseError(root.GetRawText()).Message ?? "error object in a 200 response");
        }

        if (Str(root, "stop_reason") == "refusal")
        {
            return new(ChunkKind.Refusal, Error: "the model refused the request (stop_reason refusal)");
        }

        if (!root.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.Array)
        {
            return new(ChunkKind.Malformed, Error: "no content blocks in the response");
        }

        var text = new StringBuilder();
        StringBuilder? thinking = null;
        foreach (var block in content.EnumerateArray())
        {
            switch (Str(block, "type"))
            {
                case "text":
                    text.Append(Str(block, "text"));
                    break;
                case "thinking":
                    (thinking ??= new()).Append(Str(block, "thinking"));
                    break;
            }
        }

        root.TryGetProperty("usage", out var usage);
        return new(ChunkKind.Text, text.ToString(), Str(root, "model"), Int(usage, "input_tokens"), Int(usage, "output_tokens"),
            FinishReason: FinishReason(Str(root, "stop_reason")), Thinking: thinking?.ToString());
    }

    public override ParsedChunk ParseStreamLine(string line, ref string? state)
    {
        if (line.StartsWith("event:", StringComparison.Ordinal))
        {
            state = line[6..].Trim();
            return default;
        }

        if (!line.StartsWith("data:", StringComparison.Ordinal))
        {
            return default;
        }

        using var doc = TryParse(line[5..].Trim());
        if (doc is null || doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            return new(ChunkKind.Malformed, Error: "a stream event is not JSON");
        }

        var root = doc.RootElement;
        var type = Str(root, "type") ?? state;
        state = null;
        switch (type)
        {
            case "error":
                return new(ChunkKind.Error, Error: ParseError(root.GetRawText()).Message ?? "in-band stream error");
            case "message_start":
                root.TryGetProperty("message", out var msg);
                msg.TryGetProperty("usage", out var u0);
                return new(ChunkKind.None, Model: Str(msg, "model"), InputTokens: Int(u0, "input_tokens"));
            case "content_block_delta":
                root.TryGetProperty("delta", out var delta);
                return Str(delta, "type") switch
                {
                    "text_delta" => new(ChunkKind.Text, Str(delta, "text") ?? ""),
                    "thinking_delta" => new(ChunkKind.None, Thinking: Str(delta, "thinking") ?? ""),
                    _ => default, // signature_delta, input_json_delta
                };
            case "message_delta":
                root.TryGetProperty("delta", out var md);
                if (Str(md, "stop_reason") == "refusal")
                {
                    return new(ChunkKind.Refusal, Error: "the model refused the request (stop_reason refusal)");
                }

                root.TryGetProperty("usage", out var u1);
                return new(ChunkKind.None, OutputTokens: Int(u1, "output_tokens"), FinishReason: FinishReason(Str(md, "stop_reason")));
            case "message_stop":
                return new(ChunkKind.Done);
            default:
                return default; // ping, content_block_start/stop
        }
    }

    /// <summary>Anthropic's stop_reason in OpenAI's words (end_turn: stop, max_tokens: length, tool_use: tool_calls); others as sent.</summary>
    internal static string? FinishReason(string? stopReason) => stopReason switch
    {
        null => null,
        "end_turn" or "stop_sequence" => "stop",
        "max_tokens" or "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => stopReason,
    };
}
