using System.Threading.Channels;
using OllamaContinuity.Failover;

namespace OllamaContinuity.Gateway;

/// <summary>
/// Listens to one request inside the engine: which backend is answering now, why the cloud was passed over
/// (from the engine's own failover and contingency lines), and the streamed text, handed to the response writer.
/// A null item in <c>tokens</c> marks the end of a run of text that arrived together: the writer flushes there.
/// </summary>
internal sealed class GatewayObserver(ChannelWriter<string?>? tokens, Action<string> warn) : IFailoverObserver
{
    private volatile BackendEndpoint? _current;
    private volatile string? _reason;

    /// <summary>The backend of the attempt running now (the one whose tokens arrive).</summary>
    public BackendEndpoint? Current => _current;

    /// <summary>Why the cloud is not answering this request (a failure class name, or Contingency); null while it is.</summary>
    public string? Reason => _reason;

    public void OnVerbose(string message)
    {
        if (message.StartsWith(FailoverEngine.ContingencyLine, StringComparison.Ordinal))
        {
            _reason = nameof(FailureClass.Contingency);
        }
        else if (message.StartsWith(FailoverEngine.FailoverLine, StringComparison.Ordinal))
        {
            // "<FailoverLine> (<FailureClass>: <detail>)"
            var open = message.IndexOf('(', FailoverEngine.FailoverLine.Length);
            var colon = open < 0 ? -1 : message.IndexOf(':', open);
            var name = colon > open ? message[(open + 1)..colon] : null;
            _reason = name is not null && Enum.TryParse<FailureClass>(name, out var cls) ? cls.ToString() : "Unknown";
        }
    }

    public void OnWarning(string message) => warn(message);

    /// <summary>
    /// True once a stream broke after text and the answer had to restart from scratch: the client already holds the
    /// broken text, so what follows is not forwarded and the stream ends in an in-band error, never in duplicated text.
    /// </summary>
    public bool RestartedAfterText { get; private set; }

    public void OnToken(string text)
    {
        if (!RestartedAfterText)
        {
            tokens?.TryWrite(text);
        }
    }

    /// <summary>Nothing more is ready from the backend: what was written so far goes out now (see <see cref="ChatHandler"/>).</summary>
    public void OnStreamIdle() => tokens?.TryWrite(null);

    public void OnStreamRescued(string notice)
    {
        if (tokens is not null)
        {
            RestartedAfterText = true;
        }
    }

    /// <summary>Nobody can approve a failover inside an HTTP call: a workflow that requires approval is declined (503).</summary>
    public ValueTask<bool> ApproveFailoverAsync(string question, CancellationToken cancellationToken) => new(false);

    /// <summary>When the first backend attempt started (a <see cref="System.Diagnostics.Stopwatch"/> timestamp; 0 before), for <see cref="GatewayTimings"/>.</summary>
    public long AttemptStartedAt { get; private set; }

    public void OnAttemptStarted(BackendEndpoint endpoint, int index, int count)
    {
        _current = endpoint;
        if (AttemptStartedAt == 0)
        {
            AttemptStartedAt = System.Diagnostics.Stopwatch.GetTimestamp();
        }
    }
}
