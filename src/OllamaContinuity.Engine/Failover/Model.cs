using System.Text.Json.Serialization;

namespace OllamaContinuity.Failover;

/// <summary>Which side of the failover served or attempted a request.</summary>
public enum BackendRole
{
    /// <summary>The cloud provider (OpenAI-compatible or Anthropic).</summary>
    Cloud,
    /// <summary>A local Ollama server.</summary>
    Ollama,
}

/// <summary>The wire protocol of a backend.</summary>
public enum BackendKind
{
    /// <summary>OpenAI-compatible chat completions (<c>/v1/chat/completions</c>, Bearer key, SSE streaming).</summary>
    OpenAI,
    /// <summary>Anthropic Messages (<c>/v1/messages</c>, <c>x-api-key</c>, SSE events).</summary>
    Anthropic,
    /// <summary>Ollama <c>/api/chat</c> (NDJSON streaming).</summary>
    Ollama,
}

/// <summary>One chat message.</summary>
public sealed record ChatMessage(string Role, string Content)
{
    public override string ToString() => $"{Role}: {Content}";
}

/// <summary>
/// A request as the application means it; the same request is replayed on each backend. A record, so that a variant
/// (a rescue's conversation with the partial answer appended) is a <c>with</c> expression that keeps every other setting.
/// </summary>
public sealed record AiRequest
{
    /// <summary>The conversation, without the system prompt.</summary>
    public required IReadOnlyList<ChatMessage> Messages { get; init; }

    /// <summary>An optional system prompt (sent as a system message, or as Anthropic's top-level <c>system</c>).</summary>
    public string? SystemPrompt { get; init; }

    /// <summary>The workflow name, for per-workflow contingency and for the log.</summary>
    public string? Workflow { get; init; }

    /// <summary>Stream tokens as they arrive (the text is still returned whole at the end).</summary>
    public bool Stream { get; init; }

    /// <summary>Ask <see cref="IFailoverObserver.ApproveFailoverAsync"/> before falling back to Ollama.</summary>
    public bool RequireFailoverApproval { get; init; }

    /// <summary>Anthropic's required <c>max_tokens</c>; sent to the others only when set. The default value is 1024 for Anthropic.</summary>
    public int? MaxTokens { get; init; }

    /// <summary>Sampling temperature, sent to every backend when set.</summary>
    public double? Temperature { get; init; }

    /// <summary>Write the prompt and the output into the request log.</summary>
    public bool LogContent { get; init; }

    /// <summary>What to do when a stream breaks after text was shown. Null: the engine's <see cref="FailoverEngineOptions.StreamRescue"/> (Restart).</summary>
    public StreamRescueMode? StreamRescue { get; init; }

    /// <summary>Keep reasoning/thinking text in <see cref="AiResponse.Thinking"/> (it never enters the answer text).</summary>
    public bool IncludeThinking { get; init; }

    /// <summary>The largest answer read from one backend, after decompression. Null: the engine's <see cref="FailoverEngineOptions.MaxResponseBytes"/> (16 MiB).</summary>
    public int? MaxResponseBytes { get; init; }

    /// <summary>The request id written to the log and the output; a new GUID when not set.</summary>
    public string RequestId { get; init; } = Guid.NewGuid().ToString("n");

    /// <summary>The request's id only: never the prompt, which must not reach a log or an error by accident.</summary>
    public override string ToString() => $"AiRequest {RequestId}";
}

/// <summary>What happened on one backend.</summary>
public sealed class AiAttempt
{
    /// <summary>'Cloud' or 'Ollama' (a string, so CSV and JSON reports read well).</summary>
    public required string Backend { get; init; }
    public required string Endpoint { get; init; }
    public required string Model { get; init; }
    /// <summary>Success, Failed, or Skipped (circuit open, cooling down, contingency, not configured).</summary>
    public required string Outcome { get; init; }
    /// <summary>A <see cref="Failover.FailureClass"/> name; empty on success.</summary>
    public string FailureClass { get; init; } = "";
    public int? StatusCode { get; init; }
    public double LatencyMs { get; init; }
    /// <summary>A short, secret-free description of the failure.</summary>
    public string? Detail { get; init; }
    /// <summary>Unparseable stream events skipped on this attempt.</summary>
    public int BadEvents { get; init; }
    /// <summary>The text this backend streamed before its stream broke (rescued on the next backend); null otherwise.</summary>
    public string? PartialText { get; init; }

    public override string ToString() =>
        Outcome == "Success" ? $"{Backend}:Success({LatencyMs:0}ms)" : $"{Backend}:{FailureClass}{(StatusCode is int s ? "/" + s : "")}({LatencyMs:0}ms)";
}

/// <summary>The result of one request: the object <c>Invoke-AiRequest</c> writes.</summary>
public sealed class AiResponse
{
    /// <summary>'Cloud' or 'Ollama': the backend that served the request (a string, so CSV and JSON reports read well).</summary>
    public required string Backend { get; init; }
    public required string Text { get; init; }
    public required string Model { get; init; }
    public required string RequestId { get; init; }
    public double LatencyMs { get; init; }
    /// <summary>Why the cloud did not serve it (empty when it did): a <see cref="FailureClass"/> name, or 'Contingency'.</summary>
    public string FailoverReason { get; init; } = "";
    public required ItemList<AiAttempt> Attempts { get; init; }
    public string? Workflow { get; init; }
    /// <summary>True when the cloud was skipped on purpose: manual contingency or the open circuit (automatic contingency).</summary>
    public bool Contingency { get; init; }
    /// <summary>Where the contingency decision came from (Environment, Process, User, Machine, Automatic), when <see cref="Contingency"/>.</summary>
    public string? ContingencySource { get; init; }
    public DateTimeOffset Timestamp { get; init; }
    /// <summary>The endpoint that served it (scheme, host, port and path; never a query string or credentials).</summary>
    public required string Endpoint { get; init; }
    public int? InputTokens { get; init; }
    public int? OutputTokens { get; init; }
    /// <summary>Why the answer ended, in OpenAI's words for every backend: stop, length (truncated), content_filter, tool_calls, or the backend's own (Ollama: load, unload).</summary>
    public string? FinishReason { get; init; }
    /// <summary>The model's reasoning/thinking text, only with <see cref="AiRequest.IncludeThinking"/>; never part of <see cref="Text"/>.</summary>
    public string? Thinking { get; init; }

    /// <summary>The attempts in one line, for CSV and tables: <c>Cloud:ConnectionRefused(2ms) -> Ollama:Success(120ms)</c>.</summary>
    [JsonIgnore]
    public string Route => string.Join(" -> ", Attempts);

    public override string ToString() => Text;
}

/// <summary>How long each phase of one backend attempt may take.</summary>
public sealed record BackendTimeouts
{
    /// <summary>TCP connect (per new connection). The default value is 3 seconds.</summary>
    public TimeSpan Connect { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>Streaming only: from sending the request to the first token. Defaults to <see cref="Total"/> when not set.</summary>
    public TimeSpan? FirstToken { get; init; }

    /// <summary>Streaming only: the longest gap between two chunks once tokens flow. Defaults to <see cref="FirstToken"/> when not set.</summary>
    public TimeSpan? Stall { get; init; }

    /// <summary>The whole attempt. The default value is 15 seconds for the cloud and 60 seconds for Ollama (the seed's defaults).</summary>
    public TimeSpan Total { get; init; } = TimeSpan.FromSeconds(15);

    internal TimeSpan EffectiveFirstToken => Min(FirstToken ?? Total, Total);
    internal TimeSpan EffectiveStall => Min(Stall ?? EffectiveFirstToken, Total);
    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    public static BackendTimeouts CloudDefault { get; } = new() { Total = TimeSpan.FromSeconds(15), FirstToken = TimeSpan.FromSeconds(10) };
    public static BackendTimeouts OllamaDefault { get; } = new() { Total = TimeSpan.FromSeconds(60) };
}
