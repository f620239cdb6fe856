namespace OllamaContinuity.Failover.Rescue;

/// <summary>
/// The rescue of one request whose stream broke after text was shown: which request the next backend gets (the
/// original, or the original plus the partial answer to continue), the notice the caller sees, and the text to return.
/// </summary>
internal sealed class StreamRescue(AiRequest original, StreamRescueMode mode, IFailoverObserver? observer)
{
    private string _prefix = "";
    private AiRequest? _next;

    /// <summary>The request the next backend gets.</summary>
    public AiRequest Request => _next ?? original;

    /// <summary>The mode in effect.</summary>
    public StreamRescueMode Mode => mode;

    /// <summary>True when <paramref name="failed"/> is a stream that broke after showing text and the mode rescues it.</summary>
    public bool Rescues(AttemptResult failed) =>
        original.Stream && mode != StreamRescueMode.None && failed.TextEmitted && failed.Decision is { Class: not FailureClass.ContentPolicy };

    /// <summary>Prepares <paramref name="next"/> after <paramref name="failed"/> broke on <paramref name="from"/>.</summary>
    public void Prepare(AttemptResult failed, BackendEndpoint from, BackendEndpoint next)
    {
        var partial = failed.Text ?? "";
        var why = $"{failed.Decision!.Class}: {failed.Decision.Detail}";
        if (mode == StreamRescueMode.Continue)
        {
            _prefix += partial;
            _next = WithPartialAnswer(original, _prefix);
            observer?.OnVerbose($"The {from.Role} stream from {from.Display} broke after {_prefix.Length} characters ({why}); {next.Role} at {next.Display} continues the answer.");
            return;
        }

        _prefix = "";
        _next = null;
        observer?.OnStreamRescued(RestartNotice(from, next, partial.Length, failed.Decision.Class));
        observer?.OnVerbose($"The {from.Role} stream from {from.Display} broke after {partial.Length} characters ({why}); {next.Role} at {next.Display} restarts the answer.");
    }

    /// <summary>True when a continuation was sent and the backend rejected it as a request (e.g. no trailing assistant message allowed).</summary>
    public bool ContinuationRejected(AttemptResult result) =>
        _prefix.Length > 0 && !result.Succeeded && !result.TextEmitted &&
        result.Decision is { Class: FailureClass.BadRequest or FailureClass.UnprocessableEntity };

    /// <summary>Falls back from Continue to Restart on the same backend.</summary>
    public void RestartAfterRejection(AttemptResult rejected, BackendEndpoint ep)
    {
        var shown = _prefix.Length;
        _prefix = "";
        _next = null;
        observer?.OnStreamRescued($"[{ep.Role} at {ep.Display} could not continue the answer ({rejected.Decision!.Detail}); the answer restarts here.]");
        observer?.OnVerbose($"{ep.Role} at {ep.Display} rejected continuing a partial answer of {shown} characters; restarting the request there.");
    }

    /// <summary>The answer to return: the continued prefix (Continue) and what the serving backend sent.</summary>
    public string Compose(string text) => _prefix + text;

    private static string RestartNotice(BackendEndpoint from, BackendEndpoint next, int chars, FailureClass cls) =>
        $"[{from.Role} stream broke here after {chars} characters ({cls}); the answer restarts from {next.Role} at {next.Display}.]";

    private static AiRequest WithPartialAnswer(AiRequest r, string partial) =>
        r with { Messages = [.. r.Messages, new ChatMessage("assistant", partial)] };
}
