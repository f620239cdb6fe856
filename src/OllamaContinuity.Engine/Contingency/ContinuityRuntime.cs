using OllamaContinuity.Alerts;
using OllamaContinuity.Failover;

namespace OllamaContinuity.Contingency;

/// <summary>
/// Wires the session's engine to the features around it: persisted per-workflow contingency
/// (<see cref="ContingencyService"/>), the contingency log, and alerts. Called once, when
/// <see cref="FailoverEngine.Shared"/> is first used; tests attach their own engines with their own parts.
/// </summary>
public static class ContinuityRuntime
{
    private static readonly Lazy<AlertDispatcher> LazyAlerts = new(() =>
        new AlertDispatcher(TimeProvider.System, AlertSettingsStore.Default.Resolve, () => FailoverEngine.Shared.HttpPool.Client,
            new SystemLog(), () => StatePaths.AlertDeliveryLog, () => StatePaths.AlertStateFile));

    /// <summary>The session's alert dispatcher (its <see cref="AlertDispatcher.Deliveries"/> is what a drill checks).</summary>
    public static AlertDispatcher Alerts => LazyAlerts.Value;

    /// <summary>Attaches the session's defaults to <paramref name="engine"/> and returns it.</summary>
    public static FailoverEngine Attach(FailoverEngine engine) =>
        Attach(engine, ContingencyService.Default, () => StatePaths.ContingencyLog, Alerts);

    /// <summary>Attaches the given parts (any may be null) to <paramref name="engine"/>.</summary>
    public static FailoverEngine Attach(FailoverEngine engine, ContingencyService? contingency, Func<string>? contingencyLogPath, AlertDispatcher? alerts)
    {
        if (contingency is not null)
        {
            engine.AddContingencySource(contingency);
            contingency.Changed += engine.Raise;
        }

        if (contingencyLogPath is not null)
        {
            engine.RequestServed += (request, response) =>
            {
                if (ContingencyLog.ShouldRecord(response))
                {
                    ContingencyLog.Append(contingencyLogPath(), request, response);
                }
            };
        }

        if (alerts is not null)
        {
            engine.StateChanged += alerts.OnEvent;
        }

        return engine;
    }
}
