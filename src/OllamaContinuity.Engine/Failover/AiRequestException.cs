namespace OllamaContinuity.Failover;

/// <summary>Why a request produced no answer.</summary>
public enum AiRequestFailure
{
    /// <summary>Every backend failed (or was skipped).</summary>
    AllBackendsFailed,
    /// <summary>The cloud rejected the request itself (400/404/413/422): failing over would not help.</summary>
    RequestRejected,
    /// <summary>The provider refused on content policy: never routed around.</summary>
    ContentPolicyRefusal,
    /// <summary>A stream broke after text was already shown: the partial text is kept, nothing is replayed.</summary>
    StreamInterrupted,
    /// <summary>Falling back needed approval and did not get it.</summary>
    FailoverNotApproved,
    /// <summary>No Ollama server has the model (each answered 404): <c>ollama pull</c> it.</summary>
    ModelNotFound,
    /// <summary>A contingency state file cannot be read, so it is unknown whether the request may go to the cloud: it was not sent.</summary>
    ContingencyStateUnreadable,
}

/// <summary>A request that produced no answer. The message names each backend's failure and holds no secret.</summary>
public sealed class AiRequestException : Exception
{
    public AiRequestException(AiRequestFailure failure, string message, string requestId, IReadOnlyList<AiAttempt> attempts, string? partialText = null)
        : base(message)
    {
        Failure = failure;
        RequestId = requestId;
        Attempts = attempts;
        PartialText = partialText;
    }

    public AiRequestFailure Failure { get; }
    public string RequestId { get; }
    public IReadOnlyList<AiAttempt> Attempts { get; }
    public string? PartialText { get; }
}
