namespace OllamaContinuity.Failover;

/// <summary>
/// What the failover client tells its caller while a request runs. Called on the request's own thread (not the
/// caller's): a cmdlet marshals these to its pipeline thread.
/// </summary>
public interface IFailoverObserver
{
    /// <summary>Progress lines for the verbose stream, among them <see cref="FailoverEngine.FailoverLine"/>.</summary>
    void OnVerbose(string message);

    /// <summary>Loud, actionable problems (a rejected key is configuration, not an outage).</summary>
    void OnWarning(string message);

    /// <summary>A piece of streamed text, in order.</summary>
    void OnToken(string text);

    /// <summary>
    /// The backend has no more streamed text ready: the engine is about to wait for its next piece. Called once after
    /// each run of <see cref="OnToken"/> calls whose text arrived together, before the wait. A relay that buffers what
    /// it writes flushes here, so pieces that arrived together go out together and none waits for the next one.
    /// </summary>
    void OnStreamIdle()
    {
    }

    /// <summary>Asked before falling back when the request requires approval. False declines.</summary>
    ValueTask<bool> ApproveFailoverAsync(string question, CancellationToken cancellationToken);

    /// <summary>
    /// A stream broke after text was shown and the answer restarts on another backend: a one-line notice to show
    /// where the broken text stopped (a host writes it on its own line). The default writes it to the verbose stream.
    /// </summary>
    void OnStreamRescued(string notice) => OnVerbose(notice);

    /// <summary>An attempt on <paramref name="endpoint"/> starts (for progress bars). <paramref name="index"/> counts from 1 of <paramref name="count"/> backends.</summary>
    void OnAttemptStarted(BackendEndpoint endpoint, int index, int count)
    {
    }
}

/// <summary>
/// The observer of the request running on the current async flow (set by <see cref="FailoverEngine.SendAsync"/>), so
/// that parts which react to the request's events, such as the alert dispatcher, can warn the one who sent it.
/// </summary>
public static class FailoverContext
{
    private static readonly AsyncLocal<IFailoverObserver?> Current = new();

    /// <summary>The current request's observer, or null outside a request.</summary>
    public static IFailoverObserver? Observer
    {
        get => Current.Value;
        internal set => Current.Value = value;
    }
}

/// <summary>A state change worth an alert.</summary>
public enum ContinuityEventKind
{
    CircuitOpened,
    CircuitHalfOpened,
    CircuitClosed,
    AllBackendsFailed,
    ContingencyEnabled,
    ContingencyDisabled,
}

/// <summary>An event raised by the engine (<see cref="FailoverEngine.StateChanged"/>); no secrets in it.</summary>
public sealed record ContinuityEvent(ContinuityEventKind Kind, DateTimeOffset Timestamp, string? Endpoint, string? Reason, DateTimeOffset? Until = null, string? Workflow = null);
