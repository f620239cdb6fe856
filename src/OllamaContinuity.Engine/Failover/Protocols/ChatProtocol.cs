using System.Text;
using System.Text.Json;

namespace OllamaContinuity.Failover.Protocols;

/// <summary>What a backend's body (or one line of its stream) said.</summary>
/// <remarks>
/// <see cref="FinishReason"/> is why the answer ended (stop, length, content_filter, tool_calls, ...), in OpenAI's words
/// for every protocol. <see cref="Thinking"/> is reasoning text: a sign of life, never part of the answer.
/// </remarks>
internal readonly record struct ParsedChunk(ChunkKind Kind, string? Text = null, string? Model = null, int? InputTokens = null, int? OutputTokens = null, string? Error = null,
    string? FinishReason = null, string? Thinking = null);

internal enum ChunkKind
{
    /// <summary>Nothing to act on (keep-alive, comments, events without text).</summary>
    None,
    /// <summary>Text (a delta when streaming, the whole answer otherwise). A non-streaming body with this kind is complete.</summary>
    Text,
    /// <summary>The stream's terminator, possibly with final text and counts.</summary>
    Done,
    /// <summary>An in-band error.</summary>
    Error,
    /// <summary>The provider refused on content policy: never fail over.</summary>
    Refusal,
    /// <summary>Not the shape this protocol expects (a stream skips a few of these; see <c>ChatStreamReader</c>).</summary>
    Malformed,
}

/// <summary>A wire protocol: builds the request, reads a whole body, reads a stream line by line.</summary>
internal abstract class ChatProtocol
{
    public static ChatProtocol For(BackendKind kind) => kind switch
    {
        BackendKind.OpenAI => OpenAIProtocol.Instance,
        BackendKind.Anthropic => AnthropicProtocol.Instance,
        _ => OllamaProtocol.Instance,
    };

    public HttpRequestMessage BuildRequest(BackendEndpoint endpoint, AiRequest request)
    {
        var buffer = new MemoryStream(256);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            WriteBody(w, endpoint, request);
            w.WriteEndObject();
        }

        var content = new ByteArrayContent(buffer.GetBuffer(), 0, (int)buffer.Length);
        content.Headers.ContentType = new("application/json") { CharSet = "utf-8" };
        var message = new HttpRequestMessage(HttpMethod.Post, endpoint.Uri) { Content = content };
        // The handler does not decompress (Streaming.BoundedBody does, within its bounds): say what we accept.
        message.Headers.TryAddWithoutValidation("Accept-Encoding", Streaming.BoundedBody.AcceptEncoding);
        AddHeaders(message, endpoint);
        return message;
    }

    protected abstract void WriteBody(Utf8JsonWriter w, BackendEndpoint endpoint, AiRequest request);

    protected virtual void AddHeaders(HttpRequestMessage message, BackendEndpoint endpoint)
    {
    }

    /// <summary>Reads a complete non-streaming 200 body.</summary>
    public abstract ParsedChunk ParseBody(ReadOnlySpan<byte> body);

    /// <summary>Reads one line of a stream. SSE protocols keep the last <c>event:</c> name in <paramref name="state"/>.</summary>
    public abstract ParsedChunk ParseStreamLine(string line, ref string? state);

    /// <summary>The error code and message in an error body, whatever its shape.</summary>
    public static (string? Code, string? Message) ParseError(string body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("error", out var err))
            {
                return (null, null);
            }

            if (err.ValueKind == JsonValueKind.String)
            {
                return (null, err.GetString()); // Ollama: {"error":"..."}
            }

            if (err.ValueKind == JsonValueKind.Object)
            {
                // OpenAI: {"error":{"message","type","code"}}; Anthropic: {"type":"error","error":{"type","message"}}
                var code = Str(err, "code") ?? Str(err, "type");
                return (code, Str(err, "message"));
            }
        }
        catch (JsonException)
        {
        }

        return (null, null);
    }

    protected static string? Str(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    protected static int? Int(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i) ? i : null;

    protected static void WriteMessages(Utf8JsonWriter w, AiRequest request, bool includeSystem)
    {
        w.WriteStartArray("messages");
        if (includeSystem && !string.IsNullOrEmpty(request.SystemPrompt))
        {
            WriteMessage(w, "system", request.SystemPrompt);
        }

        foreach (var m in request.Messages)
        {
            if (!includeSystem && m.Role == "system")
            {
                continue;
            }

            WriteMessage(w, m.Role, m.Content);
        }

        w.WriteEndArray();
    }

    private static void WriteMessage(Utf8JsonWriter w, string role, string content)
    {
        w.WriteStartObject();
        w.WriteString("role", role);
        w.WriteString("content", content);
        w.WriteEndObject();
    }

    protected static JsonDocument? TryParse(ReadOnlySpan<byte> json)
    {
        try
        {
            var reader = new Utf8JsonReader(json);
            return JsonDocument.ParseValue(ref reader);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    protected static JsonDocument? TryParse(string json) => TryParse(Encoding.UTF8.GetBytes(json));
}
