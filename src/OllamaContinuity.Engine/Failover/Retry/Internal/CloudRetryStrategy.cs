namespace OllamaContinuity.Failover.Retry;

/// <summary>
/// The cloud's part of a request: one attempt through the circuit and, when <see cref="RetryPredicate"/> allows, one
/// retry within what is left of the cloud's total timeout. Every try goes into the request's attempts.
/// </summary>
internal sealed class CloudRetryStrategy(TimeProvider time)
{
    public async Task<AttemptResult> ExecuteAsync(
        CircuitRegistry.CloudCircuit circuit, BackendEndpoint cloud, BackendPlan plan, List<AiAttempt> attempts, IFailoverObserver? observer,
        Func<BackendEndpoint, CancellationToken, Task<AttemptResult>> attempt, CancellationToken cancellationToken)
    {
        var options = plan.Retry ?? CloudRetryOptions.Default;
        var started = time.GetTimestamp();
        var result = await circuit.ExecuteAsync(cloud, plan.ProbeInterval, attempt, cancellationToken).ConfigureAwait(false);
        if (result.Succeeded || result.Attempt.Outcome == "Skipped")
        {
            return result;
        }

        var budget = cloud.Timeouts.Total;
        if (circuit.Controller.IsOpen || RetryPredicate.Delay(result, time.GetElapsedTime(started), budget, options) is not { } wait)
        {
            circuit.CoolDownFor(result);
            return result;
        }

        attempts.Add(result.Attempt);
        observer?.OnVerbose(wait > TimeSpan.Zero
            ? $"The cloud at {cloud.Display} asked us to retry in {wait.TotalSeconds:0.###} s ({result.Decision!.Class}: {result.Decision.Detail}); waiting, then trying it once more"
            : $"The cloud at {cloud.Display} failed once ({result.Decision!.Class}: {result.Decision.Detail}); trying it once more");
        if (wait > TimeSpan.Zero)
        {
            await Task.Delay(wait, time, cancellationToken).ConfigureAwait(false);
        }

        // The retry gets what is left of the cloud's total timeout, never more.
        var left = budget - time.GetElapsedTime(started);
        if (left <= TimeSpan.Zero)
        {
            attempts.RemoveAt(attempts.Count - 1);
            return result;
        }

        var t = cloud.Timeouts;
        var retryEndpoint = cloud.WithTimeouts(t with { Total = left });
        var second = await circuit.ExecuteAsync(retryEndpoint, plan.ProbeInterval, attempt, cancellationToken, probeWith: cloud).ConfigureAwait(false);
        if (!second.Succeeded)
        {
            circuit.CoolDownFor(second);
        }

        return second;
    }
}
