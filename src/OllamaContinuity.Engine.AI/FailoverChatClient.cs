using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.Extensions.AI;
using OllamaContinuity.Failover;
using EngineMessage = OllamaContinuity.Failover.ChatMessage;

namespace OllamaContinuity.AI;

/// <summary>Settings of a <see cref="FailoverChatClient"/>.</summary>
public sealed record FailoverChatClientOptions
{
    /// <summary>The workflow of every request (per-workflow contingency, the log) unless <see cref="FailoverChatClient.WorkflowKey"/> is in a request's <see cref="ChatOptions.AdditionalProperties"/>. The default value is null.</summary>
    public string? Workflow { get; init; }

    /// <summary>Write the prompt and the output into the request log. The default value is false.</summary>
    public bool LogContent { get; init; }
}

/// <summary>
/// The failover engine as a <see cref="IChatClient"/>: the cloud first, Ollama on failure, with the engine's circuits,
/// contingency, stream rescue and request log, in process. Thread-safe. The engine is the caller's (not disposed here).
/// Who served each answer is in the <c>AdditionalProperties</c> of the answer's message (<c>response.Messages[^1]</c>, also
/// for a stream combined with <c>ToChatResponse()</c>), of a plain call's <see cref="ChatResponse"/> and of a stream's
/// last update: <c>backend</c> (Cloud or Ollama), <c>failoverReason</c> (empty when the cloud served it), <c>requestId</c>
/// (the request log's id) and <c>endpoint</c>. A request that no backend answered throws <see cref="AiRequestException"/>.
/// A stream that breaks after text was streamed is continued by the next backend (the partial answer goes to it as the
/// last assistant message), so the updates add up to one answer, never a repeated one; when that backend can only
/// restart the answer, the stream ends with <see cref="AiRequestException"/> (<see cref="AiRequestFailure.StreamInterrupted"/>).
/// </summary>
public sealed class FailoverChatClient : IChatClient
{
    /// <summary>The <see cref="ChatOptions.AdditionalProperties"/> key that names a request's workflow.</summary>
    public const string WorkflowKey = "ollamacontinuity.workflow";

    private readonly FailoverEngine _engine;
    private readonly BackendPlan _plan;
    private readonly FailoverChatClientOptions _options;
    private readonly ChatClientMetadata _metadata;

    /// <summary>
    /// A client configured the way Invoke-AiRequest and the gateway are: <paramref name="backends"/> (null: none) over
    /// the environment variables (CLOUD_API_KEY, CLOUD_API_URL, CLOUD_PROVIDER, CLOUD_MODEL, CLOUD_TIMEOUT,
    /// OLLAMA_URL, OLLAMA_MODEL, OLLAMA_TIMEOUT, CONNECT_TIMEOUT, FIRST_TOKEN_TIMEOUT, OLLAMACONTINUITY_LOG_PATH)
    /// over the defaults; see <see cref="BackendSettings.Resolve"/>. A bad setting throws <see cref="ArgumentException"/>
    /// at once (its ParamName is the error id: InvalidCloudUri, InvalidOllamaUri, InvalidTimeout, InvalidCloudApiKey).
    /// </summary>
    /// <param name="backends">Settings that win over the environment.</param>
    /// <param name="options">The workflow and content logging.</param>
    /// <param name="engine">The engine (connection pool, circuits). Null: <see cref="FailoverEngine.Shared"/>, the process's
    /// engine, which also honours the persisted contingency state (Enable-AiContingency) and sends the configured alerts.</param>
    public static FailoverChatClient FromEnvironment(BackendOverrides? backends = null, FailoverChatClientOptions? options = null, FailoverEngine? engine = null) =>
        new(engine ?? FailoverEngine.Shared, BackendSettings.Resolve(backends), options);

    /// <summary>A client over <paramref name="engine"/> with an explicit <paramref name="plan"/>.</summary>
    public FailoverChatClient(FailoverEngine engine, BackendPlan plan, FailoverChatClientOptions? options = null)
    {
        _engine = engine ?? throw new ArgumentNullException(nameof(engine));
        _plan = plan ?? throw new ArgumentNullException(nameof(plan));
        _options = options ?? new();
        var first = plan.Cloud ?? plan.Ollama.FirstOrDefault();
        _metadata = new ChatClientMetadata("OllamaContinuity", first?.Uri, first?.Model);
    }

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<Microsoft.Extensions.AI.ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var request = ToRequest(messages, options, stream: false);
        var response = await _engine.SendAsync(request, _plan, observer: null, cancellationToken).ConfigureAwait(false);
        // The route on the message too: where ToChatResponse() puts a stream's, so one place works for both calls.
        return new ChatResponse(new Microsoft.Extensions.AI.ChatMessage(ChatRole.Assistant, response.Text) { MessageId = response.RequestId, AdditionalProperties = Route(response) })
        {
            ResponseId = response.RequestId,
            ModelId = response.Model,
            CreatedAt = response.Timestamp,
            FinishReason = ChatFinishReason.Stop,
            Usage = Usage(response),
            AdditionalProperties = Route(response),
        };
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<Microsoft.Extensions.AI.ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        // Streamed text cannot be taken back: a broken stream is continued, never restarted (as the gateway does).
        var request = ToRequest(messages, options, stream: true) with { StreamRescue = StreamRescueMode.Continue };
        var channel = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var observer = new TokenObserver(channel.Writer);
        var send = SendAsync(request, observer, channel.Writer, cancellationToken);
        var any = false;
        try
        {
            await foreach (var text in channel.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                any = true;
                yield return new ChatResponseUpdate(ChatRole.Assistant, text) { ResponseId = request.RequestId, MessageId = request.RequestId };
            }
        }
        finally
        {
            _ = send.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        }

        var response = await send.ConfigureAwait(false); // throws AiRequestException when nothing answered
        if (observer.RestartedAfterText)
        {
            throw new AiRequestException(AiRequestFailure.StreamInterrupted,
                $"The answer broke after text was streamed and {response.Backend} could only restart it from scratch, not continue it; send the request again.",
                response.RequestId, response.Attempts);
        }

        var final = new ChatResponseUpdate(ChatRole.Assistant, any ? [] : [new TextContent(response.Text)])
        {
            ResponseId = response.RequestId,
            MessageId = response.RequestId,
            ModelId = response.Model,
            CreatedAt = response.Timestamp,
            FinishReason = ChatFinishReason.Stop,
            AdditionalProperties = Route(response),
        };
        if (Usage(response) is { } usage)
        {
            final.Contents.Add(new UsageContent(usage));
        }

        yield return final;
    }

    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        return serviceKey is not null ? null
            : serviceType == typeof(ChatClientMetadata) ? _metadata
            : serviceType == typeof(FailoverEngine) ? _engine
            : serviceType.IsInstanceOfType(this) ? this
            : null;
    }

    /// <summary>Nothing to release: the engine belongs to the caller.</summary>
    public void Dispose()
    {
    }

    private async Task<AiResponse> SendAsync(AiRequest request, IFailoverObserver observer, ChannelWriter<string> writer, CancellationToken ct)
    {
        try
        {
            return await _engine.SendAsync(request, _plan, observer, ct).ConfigureAwait(false);
        }
        finally
        {
            writer.TryComplete();
        }
    }

    private AiRequest ToRequest(IEnumerable<Microsoft.Extensions.AI.ChatMessage> messages, ChatOptions? options, bool stream)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var list = new List<EngineMessage>();
        foreach (var m in messages)
        {
            string role;
            if (m.Role == ChatRole.System)
            {
                role = "system";
            }
            else if (m.Role == ChatRole.User)
            {
                role = "user";
            }
            else if (m.Role == ChatRole.Assistant)
            {
                role = "assistant";
            }
            else
            {
                throw new NotSupportedException($"The role '{m.Role}' is not supported: the failover client serves text conversations (system, user, assistant).");
            }

            if (m.Contents.Any(c => c is not TextContent and not TextReasoningContent))
            {
                throw new NotSupportedException("Only text content is supported: the same request must work on the local Ollama model.");
            }

            list.Add(new EngineMessage(role, m.Text));
        }

        if (options?.Tools is { Count: > 0 })
        {
            throw new NotSupportedException("Tools are not supported by the failover client.");
        }

        var workflow = options?.AdditionalProperties?.TryGetValue(WorkflowKey, out var w) == true && w is string ws ? ws : _options.Workflow;
        return new AiRequest
        {
            Messages = list,
            SystemPrompt = options?.Instructions,
            Workflow = workflow,
            // Streamed from the backend for a streaming call (first-token and stall watchdogs), whole otherwise.
            Stream = stream,
            MaxTokens = options?.MaxOutputTokens,
            Temperature = options?.Temperature,
            LogContent = _options.LogContent,
        };
    }

    private static UsageDetails? Usage(AiResponse r) =>
        r.InputTokens is null && r.OutputTokens is null ? null : new UsageDetails
        {
            InputTokenCount = r.InputTokens, OutputTokenCount = r.OutputTokens, TotalTokenCount = (r.InputTokens ?? 0) + (r.OutputTokens ?? 0),
        };

    private static AdditionalPropertiesDictionary Route(AiResponse r) => new()
    {
        ["backend"] = r.Backend,
        ["failoverReason"] = r.FailoverReason,
        ["requestId"] = r.RequestId,
        ["endpoint"] = r.Endpoint,
    };

    private sealed class TokenObserver(ChannelWriter<string> writer) : IFailoverObserver
    {
        /// <summary>True once the answer restarted from scratch after text was streamed: nothing more is forwarded.</summary>
        public bool RestartedAfterText { get; private set; }

        public void OnVerbose(string message)
        {
        }

        public void OnWarning(string message)
        {
        }

        public void OnToken(string text)
        {
            if (!RestartedAfterText)
            {
                writer.TryWrite(text);
            }
        }

        public void OnStreamRescued(string notice) => RestartedAfterText = true;

        public ValueTask<bool> ApproveFailoverAsync(string question, CancellationToken cancellationToken) => new(false);
    }
}
