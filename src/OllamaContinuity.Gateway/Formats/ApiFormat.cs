using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;
using OllamaContinuity.Failover;

namespace OllamaContinuity.Gateway.Formats;

/// <summary>A client request that cannot be served, with the status and the error type the client's API uses.</summary>
internal sealed class GatewayException(int status, string message, string? code = null) : Exception(message)
{
    public int Status { get; } = status;
    public string? Code { get; } = code;
}

/// <summary>What the client asked for, in the engine's terms (the edge translation of one request).</summary>
internal sealed record ChatCall(IReadOnlyList<ChatMessage> Messages, string? SystemPrompt, string Model, bool Stream, int? MaxTokens, double? Temperature)
{
    /// <summary>OpenAI's <c>stream_options.include_usage</c>: one extra chunk with the token counts before <c>[DONE]</c>.</summary>
    public bool IncludeUsage { get; init; }
}

/// <summary>The state of one streamed answer (its id, the model name echoed, the time it started).</summary>
internal sealed class StreamState(string requestId, string model, DateTimeOffset started)
{
    private string? _chunkId;

    public string RequestId { get; } = requestId;

    /// <summary>OpenAI's chunk id (<c>chatcmpl-</c> and the request id), built once per stream rather than once per chunk.</summary>
    public string ChunkId => _chunkId ??= "chatcmpl-" + RequestId;
    public string Model { get; } = model;
    public DateTimeOffset Started { get; } = started;
    public bool IncludeUsage { get; init; }
}

/// <summary>
/// One client-facing API: reads its request into a <see cref="ChatCall"/>, writes the engine's answer back in its
/// shape, whole or streamed, and writes errors the way its SDKs expect them. Nothing here talks to a backend.
/// </summary>
internal abstract class ApiFormat
{
    protected static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The label in metrics and logs: openai, anthropic, ollama-chat, ollama-generate.</summary>
    public abstract string Name { get; }

    /// <summary>The content type of a streamed answer (SSE or NDJSON).</summary>
    public abstract string StreamContentType { get; }

    public abstract ChatCall Parse(JsonElement root);

    /// <summary>An error body in this API's shape.</summary>
    public abstract void WriteError(Utf8JsonWriter w, int status, string message, string? code);

    public abstract void WriteWhole(Utf8JsonWriter w, AiResponse response, ChatCall call);

    public abstract void StreamStart(IBufferWriter<byte> output, StreamState s);

    public abstract void StreamDelta(IBufferWriter<byte> output, StreamState s, string text);

    public abstract void StreamEnd(IBufferWriter<byte> output, StreamState s, AiResponse response);

    /// <summary>An in-band error after the 200 and some text: the client's SDK raises it, never a truncated success.</summary>
    public abstract void StreamError(IBufferWriter<byte> output, StreamState s, int status, string message, string? code);

    public static byte[] ErrorBody(ApiFormat format, int status, string message, string? code)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        WriteJson(buffer, w => format.WriteError(w, status, message, code));
        return buffer.WrittenSpan.ToArray();
    }

    // Reading helpers shared by the formats.

    protected static string RequireModel(JsonElement root)
    {
        if (!root.TryGetProperty("model", out var m) || m.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(m.GetString()))
        {
            throw new GatewayException(400, "'model' is required and must be a string.", "missing_model");
        }

        return m.GetString()!.Trim();
    }

    protected static bool? OptBool(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new GatewayException(400, $"'{name}' must be a boolean.", "invalid_type"),
        };
    }

    protected static double? OptNumber(JsonElement root, string name, double min, double max)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out var d) || d < min || d > max)
        {
            throw new GatewayException(400, $"'{name}' must be a number between {min} and {max}.", "invalid_value");
        }

        return d;
    }

    protected static int? OptInt(JsonElement root, string name, int min, int max)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out var i) || i < min || i > max)
        {
            throw new GatewayException(400, $"'{name}' must be an integer between {min} and {max}.", "invalid_value");
        }

        return i;
    }

    /// <summary>Fields that belong to another API: a clear 400 instead of a silently different request.</summary>
    protected static void RejectForeign(JsonElement root, string api, params (string Field, string Hint)[] foreign)
    {
        foreach (var (field, hint) in foreign)
        {
            if (root.TryGetProperty(field, out _))
            {
                throw new GatewayException(400, $"'{field}' is not a field of the {api} API ({hint}).", "unsupported_field");
            }
        }
    }

    /// <summary>A message's content: a string, or an array of text blocks (<c>{"type":"text","text":...}</c>).</summary>
    protected static string ReadContent(JsonElement content, int index)
    {
        switch (content.ValueKind)
        {
            case JsonValueKind.String:
                return content.GetString()!;
            case JsonValueKind.Array:
                var parts = new List<string>();
                foreach (var block in content.EnumerateArray())
                {
                    if (block.ValueKind != JsonValueKind.Object || !block.TryGetProperty("type", out var t) || t.ValueKind != JsonValueKind.String)
                    {
                        throw new GatewayException(400, $"messages[{index}].content has a block without a 'type'.", "invalid_content");
                    }

                    if (t.GetString() != "text")
                    {
                        throw new GatewayException(400, $"messages[{index}].content has a '{t.GetString()}' block; the gateway serves text only (the same request must work on the local Ollama model).", "unsupported_content");
                    }

                    if (!block.TryGetProperty("text", out var text) || text.ValueKind != JsonValueKind.String)
                    {
                        throw new GatewayException(400, $"messages[{index}].content has a text block without 'text'.", "invalid_content");
                    }

                    parts.Add(text.GetString()!);
                }

                return string.Concat(parts);
            default:
                throw new GatewayException(400, $"messages[{index}].content must be a string or an array of text blocks.", "invalid_content");
        }
    }

    protected static List<ChatMessage> ReadMessages(JsonElement root, Func<string, string?> mapRole, string rolesText)
    {
        if (!root.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array || messages.GetArrayLength() == 0)
        {
            throw new GatewayException(400, "'messages' is required and must be a non-empty array.", "missing_messages");
        }

        var list = new List<ChatMessage>(messages.GetArrayLength());
        var i = 0;
        foreach (var m in messages.EnumerateArray())
        {
            if (m.ValueKind != JsonValueKind.Object || !m.TryGetProperty("role", out var r) || r.ValueKind != JsonValueKind.String)
            {
                throw new GatewayException(400, $"messages[{i}] needs a 'role'.", "invalid_message");
            }

            var role = mapRole(r.GetString()!);
            if (role is null)
            {
                throw new GatewayException(400, $"messages[{i}].role '{r.GetString()}' is not supported here (use {rolesText}).", "unsupported_role");
            }

            if (!m.TryGetProperty("content", out var content))
            {
                throw new GatewayException(400, $"messages[{i}] needs a 'content'.", "invalid_message");
            }

            if (m.TryGetProperty("images", out var images) && images.ValueKind == JsonValueKind.Array && images.GetArrayLength() > 0)
            {
                throw new GatewayException(400, $"messages[{i}] has images; the gateway serves text only.", "unsupported_content");
            }

            list.Add(new ChatMessage(role, ReadContent(content, i)));
            i++;
        }

        if (list.All(x => string.IsNullOrWhiteSpace(x.Content)))
        {
            throw new GatewayException(400, "Every message is empty.", "empty_prompt");
        }

        return list;
    }

    protected static long Unix(DateTimeOffset t) => t.ToUnixTimeSeconds();

    protected static void WriteJsonLine(IBufferWriter<byte> output, Action<Utf8JsonWriter> body, ReadOnlySpan<byte> prefix, ReadOnlySpan<byte> suffix)
    {
        // Never an empty write: it asks Kestrel's chunked response writer for a span of any size, and the JSON writer's
        // next request for 256 bytes then got the small rest of that span ("could not provide an output buffer that is
        // large enough"), which cut Ollama-format streams (no prefix) short whenever a flush left a block nearly full.
        if (!prefix.IsEmpty)
        {
            output.Write(prefix);
        }

        WriteJson(output, body);
        output.Write(suffix);
    }

    [ThreadStatic]
    private static Utf8JsonWriter? t_writer;

    // A writer is reset onto the shared dummy when put back, so that it never keeps a finished response's pipe alive.
    private static readonly ArrayBufferWriter<byte> Detached = new(1);

    /// <summary>
    /// Writes one JSON value to <paramref name="output"/> with this thread's writer (a stream writes one per chunk:
    /// a new writer each time was most of a chunk's allocations). Re-entrant: a nested call gets a writer of its own.
    /// </summary>
    public static void WriteJson(IBufferWriter<byte> output, Action<Utf8JsonWriter> body)
    {
        var w = t_writer;
        t_writer = null;
        if (w is null)
        {
            w = new Utf8JsonWriter(output, WriterOptions);
        }
        else
        {
            w.Reset(output);
        }

        try
        {
            body(w);
            w.Flush();
        }
        finally
        {
            w.Reset(Detached);
            t_writer = w;
        }
    }
}
