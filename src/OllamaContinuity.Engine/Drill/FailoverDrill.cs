using System.Collections.Concurrent;
using System.Net;
using OllamaContinuity.Alerts;
using OllamaContinuity.Failover;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Drill;

/// <summary>
/// The seed's quarterly drill: preflight (cloud and Ollama healthy), block the cloud, run the probe workload and
/// check every request (served by Ollama, failover line, quality), confirm the alert, remove the block, verify the
/// cloud serves again and the circuit closes, and report. The block is removed in a finally block, so an exception
/// or cancellation (Ctrl+C) never leaves it behind; a marker file covers a crash.
/// </summary>
public sealed class FailoverDrill
{
    private readonly FailoverEngine _engine;
    private readonly AlertDispatcher? _alerts;
    private readonly Func<AlertSettings?> _alertSettings;
    private readonly TimeProvider _time;

    /// <param name="engine">The engine whose requests are probed (the session's, so -Probe script blocks that call Invoke-AiRequest are covered too).</param>
    /// <param name="alerts">The dispatcher whose delivery record is checked; null skips the alert check.</param>
    /// <param name="alertSettings">The alert settings in force (to tell "none configured" from "not delivered").</param>
    public FailoverDrill(FailoverEngine engine, AlertDispatcher? alerts, Func<AlertSettings?> alertSettings)
    {
        _engine = engine;
        _alerts = alerts;
        _alertSettings = alertSettings;
        _time = engine.TimeProvider;
    }

    /// <summary>The addresses and commands the drill would use; runs and changes nothing.</summary>
    public async Task<DrillPlan> PlanAsync(DrillOptions o, CancellationToken ct)
    {
        var cloud = RequireCloud(o);
        if (o.BlockMethod == DrillBlockMethod.Simulated)
        {
            return new DrillPlan(cloud.Display, [], null, [], []);
        }

        var addresses = await ResolveAsync(cloud.Uri, ct).ConfigureAwait(false);
        var blocker = new OutboundBlocker(o.Runner, o.Firewall ?? OutboundBlocker.Detect());
        return new DrillPlan(cloud.Display, addresses.Select(a => a.ToString()).ToArray(), blocker.Firewall.ToString(), blocker.ApplyPlan(addresses, cloud.Uri.Port), blocker.RemovePlan());
    }

    public async Task<DrillReport> RunAsync(DrillOptions o, IProgress<DrillProgress>? progress = null, CancellationToken ct = default)
    {
        var cloud = RequireCloud(o);
        if (o.Plan.Ollama.Count == 0)
        {
            throw new ArgumentException("The drill needs at least one Ollama server.", nameof(o));
        }

        if (o.Duration <= TimeSpan.Zero || o.Interval <= TimeSpan.Zero)
        {
            throw new ArgumentException("Duration and Interval must be positive.", nameof(o));
        }

        var report = new DrillReport
        {
            StartedAt = _time.GetUtcNow(),
            BlockMethod = o.BlockMethod,
            CloudEndpoint = cloud.Display,
            OllamaEndpoints = o.Plan.Ollama.Select(e => e.Display).ToArray(),
            PlannedDurationSeconds = o.Duration.TotalSeconds,
            IntervalSeconds = o.Interval.TotalSeconds,
            Log = o.Log,
        };
        o.Log?.Invoke($"Drill {report.DrillId}: {o.BlockMethod} block of {cloud.Display} for {o.Duration.TotalSeconds:0.###} s, probes every {o.Interval.TotalSeconds:0.###} s, Ollama at {string.Join(", ", report.OllamaEndpoints)}.");
        var seq = 0;
        OutboundBlocker? blocker = null;
        IReadOnlyList<IPAddress> addresses = [];
        var blocked = false;
        string? pfToken = null;
        DateTimeOffset blockAt = default;
        void Progress(string phase, string status, int pct, double secondsLeft) =>
            progress?.Report(new DrillProgress(phase, status, Math.Clamp(pct, 0, 100), (int)Math.Max(0, Math.Ceiling(secondsLeft))));
        double Total() => o.Duration.TotalSeconds + 30;

        // SIGTERM/SIGHUP (and Ctrl+Break on Windows) cancel the drill like Ctrl+C; the process ends once the block is gone.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        ct = stop.Token;
        var markerPath = o.MarkerPath;
        using var signals = new DrillSignalGuard(stop, async () =>
        {
            if (blocker is not null && (await blocker.RemoveAsync(pfToken, CancellationToken.None).ConfigureAwait(false)).Count == 0)
            {
                File.Delete(markerPath);
            }
        });

        try
        {
            // 1. Preflight
            Progress("Preflight", "Checking the cloud and Ollama", 0, Total());
            var cleanup = await DrillCleanup.RemoveLeftoverAsync(o.MarkerPath, o.Runner, _engine.HttpPool, ct, sweepFirewall: o.BlockMethod == DrillBlockMethod.Firewall).ConfigureAwait(false);
            if (cleanup.Found)
            {
                report.Steps.Add(new DrillStep
                {
                    Name = "RemoveLeftoverBlock", StartedAt = _time.GetUtcNow(), Outcome = cleanup.Removed ? "Warning" : "Failed",
                    Detail = $"a block of {(cleanup.DrillId is null ? "an earlier drill" : $"drill {cleanup.DrillId} from {cleanup.StartedAt:u}")} was left behind: {cleanup.Detail}",
                });
                if (!cleanup.Removed)
                {
                    return Finish(report, "NotStarted");
                }
            }

            var pre = Step(report, "Preflight");
            var problems = new List<string>();
            if (_engine.EvaluateContingency(o.Workflow) is { } c)
            {
                problems.Add($"contingency is on for the drill's workflow '{o.Workflow}' (source {c.Source}: {c.Reason}); the cloud would be skipped. Disable it first (Disable-AiContingency).");
            }

            if (_engine.GetCircuits().FirstOrDefault(x => x.Endpoint == cloud.Display && x.State != "Closed") is { } open)
            {
                problems.Add($"the circuit of {cloud.Display} is {open.State} ({open.Reason}) until {open.Until:u}: the cloud is not healthy now.");
            }

            var prompt = o.Probes.FirstOrDefault(p => p.Prompt is not null)?.Prompt ?? DrillOptions.DefaultPrompt;
            if (problems.Count == 0)
            {
                var r = await PromptAsync(new DrillProbe("preflight-cloud") { Prompt = prompt }, o, o.Plan, "Preflight", ++seq, ct).ConfigureAwait(false);
                AddProbe(report, r);
                if (r.Backend != nameof(BackendRole.Cloud))
                {
                    problems.Add($"the cloud at {cloud.Display} did not answer ({r.FailoverReason}{(r.Error is null ? "" : ": " + r.Error)}).");
                }
            }

            var ollamaOnly = new BackendPlan(null, o.Plan.Ollama) { LogPath = o.Plan.LogPath, DisableLog = o.Plan.DisableLog };
            var ro = await PromptAsync(new DrillProbe("preflight-ollama") { Prompt = prompt }, o, ollamaOnly, "Preflight", ++seq, ct).ConfigureAwait(false);
            AddProbe(report, ro);
            if (!ro.QualityPassed || ro.Backend != nameof(BackendRole.Ollama))
            {
                problems.Add($"Ollama ({string.Join(", ", report.OllamaEndpoints)}) did not answer acceptably{(ro.Error is null ? "" : ": " + ro.Error)}.");
            }

            if (o.BlockMethod == DrillBlockMethod.Firewall)
            {
                try
                {
                    addresses = await ResolveAsync(cloud.Uri, ct).ConfigureAwait(false);
                    blocker = new OutboundBlocker(o.Runner, o.Firewall ?? OutboundBlocker.Detect());
                    report.Firewall = blocker.Firewall.ToString();
                    report.BlockedAddresses = addresses.Select(a => a.ToString()).ToArray();
                }
                catch (Exception e) when (e is System.Net.Sockets.SocketException or ArgumentException)
                {
                    problems.Add($"cannot resolve {cloud.Uri.Host}: {e.Message}");
                }
            }

            Close(pre, problems.Count == 0 ? "Passed" : "Failed", problems.Count == 0 ? "the cloud and Ollama both answered" : string.Join(" ", problems));
            if (problems.Count > 0)
            {
                return Finish(report, "NotStarted");
            }

            // 2. Block
            var block = Step(report, "Block");
            new DrillMarker
            {
                DrillId = report.DrillId, Method = o.BlockMethod, Firewall = blocker?.Firewall, CloudEndpoint = cloud.Display,
                BlockedOrigin = cloud.Uri.GetLeftPart(UriPartial.Authority), Addresses = report.BlockedAddresses, StartedAt = _time.GetUtcNow(),
            }.Write(o.MarkerPath);
            blocked = true;
            if (blocker is null)
            {
                _engine.HttpPool.Blocklist.Block(cloud.Uri);
            }
            else
            {
                pfToken = await blocker.ApplyAsync(addresses, cloud.Uri.Port, CancellationToken.None).ConfigureAwait(false);
                if (pfToken is not null)
                {
                    (DrillMarker.Read(o.MarkerPath)! with { PfToken = pfToken }).Write(o.MarkerPath);
                }
            }

            blockAt = _time.GetUtcNow();
            Close(block, "Passed", blocker is null ? $"simulated block of {cloud.Display} in this process" : $"{blocker.Firewall} blocks outbound TCP to {string.Join(", ", report.BlockedAddresses)} port {cloud.Uri.Port}");

            // 3. Probe workload
            var load = Step(report, "Failover");
            var end = blockAt + o.Duration;
            var round = 0;
            while (true)
            {
                var tick = _time.GetUtcNow();
                round++;
                foreach (var p in o.Probes)
                {
                    var left = (end - _time.GetUtcNow()).TotalSeconds;
                    Progress("Failover", $"Round {round}: probe '{p.Name}' with the cloud blocked", (int)(100 * (1 - left / Total())), left + 30);
                    foreach (var r in await RunProbeAsync(p, o, "Failover", () => ++seq, ct).ConfigureAwait(false))
                    {
                        AddProbe(report, r);
                        if (report.TimeToFailoverSeconds is null && r.Passed)
                        {
                            report.TimeToFailoverSeconds = Math.Round((r.Timestamp - blockAt).TotalSeconds + r.LatencyMs / 1000, 3);
                        }
                    }
                }

                var next = tick + o.Interval;
                if (next >= end)
                {
                    break;
                }

                await Task.Delay(next - _time.GetUtcNow() is var wait && wait > TimeSpan.Zero ? wait : TimeSpan.Zero, _time, ct).ConfigureAwait(false);
            }

            var failed = report.Probes.Where(p => p.Phase == "Failover" && !p.Passed).ToArray();
            Close(load, failed.Length == 0 && report.ProbesPassed > 0 ? "Passed" : "Failed",
                $"{report.ProbesPassed} of {report.ProbesPassed + failed.Length} probes served by Ollama with the failover line and an acceptable answer" +
                (failed.Length == 0 ? "" : "; failed: " + string.Join("; ", failed.Take(5).Select(f => $"#{f.Sequence} {f.Probe}: {Why(f)}"))));

            // 4. Alert
            await CheckAlertAsync(report, o, blockAt, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            report.Steps.Add(new DrillStep
            {
                Name = "Cancelled", Outcome = "Failed", StartedAt = _time.GetUtcNow(),
                Detail = signals.Received is { } sig ? $"the drill was stopped by {sig}; the block is being removed" : "the drill was cancelled (Ctrl+C); the block is being removed",
            });
            report.Outcome = "Aborted";
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException or AiRequestException)
        {
            report.Steps.Add(new DrillStep { Name = "Error", Outcome = "Failed", StartedAt = _time.GetUtcNow(), Detail = e.Message });
        }
        finally
        {
            // 5. Always remove the block, whatever happened above.
            if (blocked)
            {
                var unblock = Step(report, "Unblock");
                IReadOnlyList<string> problems = [];
                if (blocker is null)
                {
                    _engine.HttpPool.Blocklist.Unblock(cloud.Uri);
                }
                else
                {
                    problems = await blocker.RemoveAsync(pfToken, CancellationToken.None).ConfigureAwait(false);
                }

                if (problems.Count == 0)
                {
                    File.Delete(o.MarkerPath);
                }

                Close(unblock, problems.Count == 0 ? "Passed" : "Failed", problems.Count == 0 ? "the block is removed" : "the block could not be removed, run Stop-FailoverDrill: " + string.Join("; ", problems));
            }

            signals.CleanedUp();
        }

        if (report.Outcome == "Aborted" || !blocked)
        {
            return Finish(report, report.Outcome == "Aborted" ? "Aborted" : "Failed");
        }

        // 6. Recovery
        try
        {
            await RecoverAsync(report, o, cloud, () => ++seq, Progress, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return Finish(report, "Aborted");
        }

        return Finish(report, report.Steps.Any(s => s.Outcome == "Failed") ? "Failed" : "Passed");
    }

    private async Task CheckAlertAsync(DrillReport report, DrillOptions o, DateTimeOffset blockAt, CancellationToken ct)
    {
        var step = Step(report, "Alert");
        if (!o.CheckAlert || _alerts is null)
        {
            Close(step, "Skipped", "the alert check was skipped (-SkipAlertCheck)");
            return;
        }

        AlertSettings? settings;
        try
        {
            settings = _alertSettings();
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            Close(step, "Failed", "the alert settings cannot be used, so the alert may reach nobody: " + e.Message);
            return;
        }

        if (settings is null)
        {
            Close(step, "Failed", "no alert destination is configured, so nobody would have been told: run Set-AiContinuityAlert (or set OLLAMACONTINUITY_ALERT_WEBHOOK), or pass -SkipAlertCheck");
            return;
        }

        var until = _time.GetUtcNow() + o.AlertTimeout;
        AlertDelivery[] mine;
        while (true)
        {
            await _alerts.FlushAsync(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
            // A webhook's error text may come from the receiving server: cleaned before it enters the report.
            mine = _alerts.Deliveries.Where(d => d.Timestamp >= blockAt && d.Kind is ContinuityEventKind.CircuitOpened)
                .Select(d => TerminalSafe.NeedsCleaning(d.Error) ? new AlertDelivery
                {
                    Timestamp = d.Timestamp, Kind = d.Kind, Channel = d.Channel, Target = d.Target, Succeeded = d.Succeeded, StatusCode = d.StatusCode,
                    Error = TerminalSafe.Clean(d.Error), Endpoint = d.Endpoint, Workflow = d.Workflow,
                } : d).ToArray();
            if (mine.Any(d => d.Succeeded) || _time.GetUtcNow() >= until || !_engine.GetCircuits().Any(c => c.State != "Closed"))
            {
                break;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(200), _time, ct).ConfigureAwait(false);
        }

        report.Alerts.AddRange(mine);
        var ok = mine.Where(d => d.Succeeded).ToArray();
        Close(step, ok.Length > 0 ? "Passed" : "Failed",
            ok.Length > 0 ? "delivered: " + string.Join(", ", ok.Select(d => $"{d.Channel} {d.Target} at {d.Timestamp:HH:mm:ss}"))
            : mine.Length > 0 ? "the alert was sent but not delivered: " + string.Join("; ", mine.Select(d => $"{d.Channel} {d.Target}: {d.Error}"))
            : report.Probes.Any(p => p.FailoverReason == nameof(FailureClass.CircuitOpen))
                ? "the circuit opened but no alert was sent: an outage of this endpoint was already reported by one of this user's processes within the repeat interval (alert-state.json in the state directory)"
                : "no outage alert was sent: the circuit did not open (it opens on 3 failed requests in a row, 2 timeouts in a row, or half of at least 3 requests within 30 seconds failing; use a shorter -Interval or more probes)");
    }

    private async Task RecoverAsync(DrillReport report, DrillOptions o, BackendEndpoint cloud, Func<int> nextSeq, Action<string, string, int, double> progress, CancellationToken ct)
    {
        var step = Step(report, "Recovery");
        var unblockAt = _time.GetUtcNow();
        var deadline = unblockAt + o.RecoveryTimeout;
        var probe = o.Probes.FirstOrDefault(p => p.Prompt is not null) ?? new DrillProbe("recovery") { Prompt = DrillOptions.DefaultPrompt };
        DrillProbeResult? served = null;
        while (_time.GetUtcNow() < deadline)
        {
            var left = (deadline - _time.GetUtcNow()).TotalSeconds;
            // While the circuit is open no request may reach the cloud: its background probe (every probe interval) is
            // what brings the cloud back, so recovery takes about one probe interval, not a break duration.
            var circuit = _engine.GetCircuits().FirstOrDefault(c => c.Endpoint == cloud.Display);
            if (circuit is { State: "Open" })
            {
                progress("Recovery", circuit.NextProbe is { } next ? $"Waiting for the cloud's probe (next at {next.ToLocalTime():HH:mm:ss})" : "Waiting for the cloud's probe", 95, left);
                await Task.Delay(Min(TimeSpan.FromMilliseconds(100), deadline - _time.GetUtcNow()), _time, ct).ConfigureAwait(false);
                continue;
            }

            progress("Recovery", "Checking that the cloud serves again", 97, left);
            var r = await PromptAsync(probe, o, o.Plan, "Recovery", nextSeq(), ct).ConfigureAwait(false);
            AddProbe(report, r);
            if (r.Backend == nameof(BackendRole.Cloud))
            {
                served = r;
                break;
            }

            await Task.Delay(Min(o.Interval, TimeSpan.FromSeconds(2)), _time, ct).ConfigureAwait(false);
        }

        var state = _engine.GetCircuits().FirstOrDefault(c => c.Endpoint == cloud.Display)?.State ?? "Closed";
        if (served is not null)
        {
            report.TimeToRecoverSeconds = Math.Round((served.Timestamp - unblockAt).TotalSeconds + served.LatencyMs / 1000, 3);
        }

        Close(step, served is not null && state == "Closed" ? "Passed" : "Failed",
            served is null ? $"the cloud did not serve again within {o.RecoveryTimeout.TotalSeconds:0} s of removing the block"
            : $"the cloud served again after {report.TimeToRecoverSeconds:0.###} s; the circuit is {state}");
    }

    private async Task<IReadOnlyList<DrillProbeResult>> RunProbeAsync(DrillProbe p, DrillOptions o, string phase, Func<int> nextSeq, CancellationToken ct)
    {
        if (p.Run is null)
        {
            return [await PromptAsync(p, o, o.Plan, phase, nextSeq(), ct).ConfigureAwait(false)];
        }

        var at = _time.GetUtcNow();
        try
        {
            var responses = await p.Run(ct).ConfigureAwait(false);
            if (responses.Count == 0)
            {
                return [new DrillProbeResult { Sequence = nextSeq(), Probe = p.Name, Phase = phase, Timestamp = at, Error = "the probe produced no AI response (it should output Invoke-AiRequest's result)" }];
            }

            // A script block's requests log the failover line to its own verbose stream; the response says the same thing.
            return responses.Select(r => Result(p, o, phase, nextSeq(), at, r, r.Backend == nameof(BackendRole.Ollama) && r.FailoverReason is { Length: > 0 } && r.FailoverReason != "Contingency", null)).ToArray();
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            return [new DrillProbeResult { Sequence = nextSeq(), Probe = p.Name, Phase = phase, Timestamp = at, Error = TerminalSafe.Clean(e.Message) }];
        }
    }

    private async Task<DrillProbeResult> PromptAsync(DrillProbe p, DrillOptions o, BackendPlan plan, string phase, int seq, CancellationToken ct)
    {
        var observer = new LineObserver();
        var at = _time.GetUtcNow();
        try
        {
            var r = await _engine.SendAsync(new AiRequest { Messages = [new ChatMessage("user", p.Prompt!)], Workflow = o.Workflow }, plan, observer, ct).ConfigureAwait(false);
            return Result(p, o, phase, seq, at, r, observer.Lines.Any(l => l.StartsWith(FailoverEngine.FailoverLine, StringComparison.Ordinal)), null);
        }
        catch (AiRequestException e)
        {
            return new DrillProbeResult { Sequence = seq, Probe = p.Name, Phase = phase, Timestamp = at, Error = TerminalSafe.Clean(e.Message), Backend = "None", FailoverReason = e.Failure.ToString() };
        }
    }

    private static DrillProbeResult Result(DrillProbe p, DrillOptions o, string phase, int seq, DateTimeOffset at, AiResponse r, bool line, string? error)
    {
        bool quality;
        string? qualityError = null;
        try
        {
            quality = (p.Quality ?? o.QualityCheck ?? (t => !string.IsNullOrWhiteSpace(t)))(r.Text);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            quality = false;
            qualityError = "the quality check failed: " + e.Message;
        }

        var passed = phase switch
        {
            "Failover" => r.Backend == nameof(BackendRole.Ollama) && line && quality,
            "Recovery" => r.Backend == nameof(BackendRole.Cloud) && quality,
            _ => quality,
        };
        return new DrillProbeResult
        {
            Sequence = seq, Probe = p.Name, Phase = phase, Timestamp = at, Backend = r.Backend, FailoverReason = r.FailoverReason,
            FailoverLineLogged = line, QualityPassed = quality, Passed = passed, LatencyMs = Math.Round(r.LatencyMs, 1), Error = TerminalSafe.Clean(error ?? qualityError),
            Answer = TerminalSafe.Clean(r.Text, 200), // the model's text came from the network
        };
    }

    private static string Why(DrillProbeResult r) =>
        r.Error ?? (r.Backend != nameof(BackendRole.Ollama) ? $"served by {r.Backend}" : !r.FailoverLineLogged ? "no failover line" : !r.QualityPassed ? "the answer failed the quality check" : "failed");

    private DrillStep Step(DrillReport report, string name)
    {
        var s = new DrillStep { Name = name, Outcome = "Running", StartedAt = _time.GetUtcNow(), Log = report.Log };
        report.Steps.Add(s);
        report.Log?.Invoke($"Step {name}: started.");
        return s;
    }

    private void Close(DrillStep s, string outcome, string detail)
    {
        s.Outcome = outcome;
        s.Detail = detail;
        s.DurationSeconds = Math.Round((_time.GetUtcNow() - s.StartedAt).TotalSeconds, 3);
        s.Log?.Invoke($"Step {s.Name}: {outcome} after {s.DurationSeconds:0.###} s{(detail.Length == 0 ? "" : ": " + detail)}.");
    }

    private static void AddProbe(DrillReport report, DrillProbeResult r)
    {
        report.Probes.Add(r);
        report.Log?.Invoke($"Probe #{r.Sequence} ({r.Phase}, '{r.Probe}'): {(r.Backend is null or "None" ? "no backend served it" : "served by " + r.Backend)} in {r.LatencyMs:0} ms"
            + (string.IsNullOrEmpty(r.FailoverReason) ? "" : $" (failover reason {r.FailoverReason})") + (r.Passed ? ", passed." : $", FAILED: {Why(r)}."));
    }

    private DrillReport Finish(DrillReport report, string outcome)
    {
        foreach (var s in report.Steps.Where(s => s.Outcome == "Running"))
        {
            Close(s, "Failed", "interrupted");
        }

        report.Outcome = outcome;
        report.EndedAt = _time.GetUtcNow();
        report.Log?.Invoke($"Drill {report.DrillId}: {outcome} (time to fail over {report.TimeToFailoverSeconds?.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture) ?? "n/a"} s, time to recover {report.TimeToRecoverSeconds?.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture) ?? "n/a"} s).");
        return report;
    }

    private static BackendEndpoint RequireCloud(DrillOptions o)
    {
        var cloud = o.Plan.Cloud ?? throw new ArgumentException("The drill needs a cloud endpoint to block.", nameof(o));
        if (IpText.UriHostProblem(cloud.Uri) is { } problem)
        {
            // The block would go to a different address than the one the admin wrote (010.0.0.1 is 8.0.0.1 to System.Uri).
            throw new ArgumentException($"The cloud endpoint is ambiguous: {problem}.", "InvalidCloudEndpoint");
        }

        return cloud;
    }

    internal static async Task<IReadOnlyList<IPAddress>> ResolveAsync(Uri uri, CancellationToken ct)
    {
        if (IPAddress.TryParse(uri.IdnHost.Trim('[', ']'), out var ip))
        {
            return [ip];
        }

        var all = await Dns.GetHostAddressesAsync(uri.IdnHost, ct).ConfigureAwait(false);
        return all.Distinct().ToArray();
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    private sealed class LineObserver : IFailoverObserver
    {
        public ConcurrentQueue<string> Lines { get; } = new();
        public void OnVerbose(string message) => Lines.Enqueue(message);
        public void OnWarning(string message) => Lines.Enqueue("WARNING: " + message);
        public void OnToken(string text) { }
        public ValueTask<bool> ApproveFailoverAsync(string question, CancellationToken cancellationToken) => new(true);
    }
}
