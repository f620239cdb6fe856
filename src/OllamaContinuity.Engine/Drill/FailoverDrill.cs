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
        Validate(o);
        var gateway = o.Gateway?.ToString();
        if (o.BlockMethod == DrillBlockMethod.Simulated)
        {
            return new DrillPlan(cloud.Display, [], null, [], []) { Gateway = gateway };
        }

        if (o.BlockMethod == DrillBlockMethod.Contingency)
        {
            return new DrillPlan(cloud.Display, [], null, [], [])
            {
                Gateway = gateway,
                Contingency = $"contingency block of the workflow '{o.Workflow}' ({o.ContingencyScope} scope, {o.Contingency.PathOf(o.ContingencyScope)}): its requests skip the cloud in every process that reads it, other workflows untouched; removed afterwards",
            };
        }

        var addresses = await ResolveAsync(cloud.Uri, ct).ConfigureAwait(false);
        var blocker = new OutboundBlocker(o.Runner, o.Firewall ?? OutboundBlocker.Detect());
        return new DrillPlan(cloud.Display, addresses.Select(a => a.ToString()).ToArray(), blocker.Firewall.ToString(), blocker.ApplyPlan(addresses, cloud.Uri.Port), blocker.RemovePlan()) { Gateway = gateway };
    }

    /// <summary>
    /// Refuses combinations that would not test what they claim, before anything runs: probes through the gateway
    /// need a block its process sees (a simulated block lives in this process only; a firewall block and a
    /// contingency block reach every process), and a gateway on this host (a block here cannot reach one elsewhere).
    /// The exception's ParamName is a stable error id.
    /// </summary>
    public static void Validate(DrillOptions o)
    {
        if (o.Gateway is not { } g)
        {
            return;
        }

        if (!g.Uri.IsAbsoluteUri || g.Uri.Scheme is not ("http" or "https"))
        {
            throw new ArgumentException($"The gateway address '{TerminalSafe.Clean(g.Uri.OriginalString, 200)}' is not an http or https URL (for example http://127.0.0.1:11435).", "InvalidGatewayUri");
        }

        if (!DrillGatewayClient.IsLocal(g.Uri))
        {
            throw new ArgumentException($"The gateway at {g} is not on this host: the drill blocks the cloud on this host only, so a gateway elsewhere would keep reaching it. Run the drill on the gateway's host, with -GatewayUri on a loopback address.", "GatewayNotLocal");
        }

        if (o.BlockMethod == DrillBlockMethod.Simulated)
        {
            throw new ArgumentException("A simulated block exists only inside this PowerShell process; the gateway is another process and would keep reaching the cloud, so its probes would prove nothing. "
                + "With -Gateway use -BlockMethod Firewall (root or an administrator; blocks the cloud for every process) or -BlockMethod Contingency (no privilege; the drill's workflow skips the cloud in every process).", "GatewayNeedsSharedBlock");
        }
    }

    public async Task<DrillReport> RunAsync(DrillOptions o, IProgress<DrillProgress>? progress = null, CancellationToken ct = default)
    {
        var cloud = RequireCloud(o);
        Validate(o);
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
            Gateway = o.Gateway?.ToString(),
        };
        o.Log?.Invoke($"Drill {report.DrillId}: {o.BlockMethod} block of {cloud.Display} for {o.Duration.TotalSeconds:0.###} s, probes every {o.Interval.TotalSeconds:0.###} s, Ollama at {string.Join(", ", report.OllamaEndpoints)}"
            + (o.Gateway is null ? "." : $"; every prompt probe also goes through the gateway at {o.Gateway}."));
        using var gateway = o.Gateway is null ? null : new DrillGatewayClient(o.Gateway);
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

            if (blocked && o.BlockMethod == DrillBlockMethod.Contingency && RemoveContingency(o).Count == 0)
            {
                File.Delete(markerPath);
            }
        });

        try
        {
            // 1. Preflight
            Progress("Preflight", "Checking the cloud and Ollama", 0, Total());
            var cleanup = await DrillCleanup.RemoveLeftoverAsync(o.MarkerPath, o.Runner, _engine.HttpPool, ct, sweepFirewall: o.BlockMethod == DrillBlockMethod.Firewall, contingency: o.Contingency).ConfigureAwait(false);
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

            if (gateway is not null)
            {
                await PreflightGatewayAsync(report, o, gateway, cloud, prompt, () => ++seq, problems, ct).ConfigureAwait(false);
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

            Close(pre, problems.Count == 0 ? "Passed" : "Failed", problems.Count == 0
                ? "the cloud and Ollama both answered" + (gateway is null ? "" : $"; the gateway at {o.Gateway} is healthy, accepted the token and served from the cloud")
                : string.Join(" ", problems));
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
                Workflow = o.BlockMethod == DrillBlockMethod.Contingency ? o.Workflow : null,
                ContingencyScope = o.BlockMethod == DrillBlockMethod.Contingency ? o.ContingencyScope : null,
            }.Write(o.MarkerPath);
            blocked = true;
            if (o.BlockMethod == DrillBlockMethod.Contingency)
            {
                // Expires on its own well after the drill, in case the drill dies and nothing removes it.
                o.Contingency.Enable(o.ContingencyScope, [o.Workflow], $"failover drill {report.DrillId}", o.Duration + o.RecoveryTimeout + TimeSpan.FromMinutes(10), requireApproval: false);
            }
            else if (blocker is null)
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
            Close(block, "Passed", o.BlockMethod == DrillBlockMethod.Contingency
                ? $"contingency is on for the workflow '{o.Workflow}' ({o.ContingencyScope} scope): its requests skip the cloud in every process that reads {o.Contingency.PathOf(o.ContingencyScope)}"
                : blocker is null ? $"simulated block of {cloud.Display} in this process" : $"{blocker.Firewall} blocks outbound TCP to {string.Join(", ", report.BlockedAddresses)} port {cloud.Uri.Port}");

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
                    var results = (await RunProbeAsync(p, o, "Failover", () => ++seq, ct).ConfigureAwait(false)).ToList();
                    if (gateway is not null && p.Prompt is not null)
                    {
                        results.Add(await GatewayPromptAsync(gateway, p, o, "Failover", ++seq, ct).ConfigureAwait(false));
                    }

                    foreach (var r in results)
                    {
                        AddProbe(report, r);
                        var ttf = Math.Round((r.Timestamp - blockAt).TotalSeconds + r.LatencyMs / 1000, 3);
                        if (report.TimeToFailoverSeconds is null && r.Passed)
                        {
                            report.TimeToFailoverSeconds = ttf;
                        }

                        if (report.GatewayTimeToFailoverSeconds is null && r.Passed && r.Path == DrillPath.Gateway)
                        {
                            report.GatewayTimeToFailoverSeconds = ttf;
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
            var gatewayProbes = report.Probes.Where(p => p.Phase == "Failover" && p.Path == DrillPath.Gateway).ToArray();
            Close(load, failed.Length == 0 && report.ProbesPassed > 0 && (gateway is null || gatewayProbes.Length > 0) ? "Passed" : "Failed",
                $"{report.ProbesPassed} of {report.ProbesPassed + failed.Length} probes served by Ollama with the {(o.BlockMethod == DrillBlockMethod.Contingency ? "contingency" : "failover")} line and an acceptable answer" +
                (gateway is null ? "" : $" ({gatewayProbes.Count(p => p.Passed)} of {gatewayProbes.Length} through the gateway{(gatewayProbes.Length == 0 ? ": no prompt probe went through the gateway (a script block probe runs in this process only)" : "")})") +
                (failed.Length == 0 ? "" : "; failed: " + string.Join("; ", failed.Take(5).Select(f => $"#{f.Sequence} {f.Probe}{(f.Path == DrillPath.Gateway ? " (gateway)" : "")}: {Why(f)}"))));

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
                if (o.BlockMethod == DrillBlockMethod.Contingency)
                {
                    problems = RemoveContingency(o);
                }
                else if (blocker is null)
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
            await RecoverAsync(report, o, cloud, gateway, () => ++seq, Progress, ct).ConfigureAwait(false);
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
        // A contingency block opens no circuit: its alert is the contingency being turned on.
        var contingency = o.BlockMethod == DrillBlockMethod.Contingency;
        var kind = contingency ? ContinuityEventKind.ContingencyEnabled : ContinuityEventKind.CircuitOpened;
        AlertDelivery[] mine;
        while (true)
        {
            await _alerts.FlushAsync(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
            // A webhook's error text may come from the receiving server: cleaned before it enters the report.
            mine = _alerts.Deliveries.Where(d => d.Timestamp >= blockAt.AddSeconds(contingency ? -5 : 0) && d.Kind == kind)
                .Select(d => TerminalSafe.NeedsCleaning(d.Error) ? new AlertDelivery
                {
                    Timestamp = d.Timestamp, Kind = d.Kind, Channel = d.Channel, Target = d.Target, Succeeded = d.Succeeded, StatusCode = d.StatusCode,
                    Error = TerminalSafe.Clean(d.Error), Endpoint = d.Endpoint, Workflow = d.Workflow,
                } : d).ToArray();
            if (mine.Any(d => d.Succeeded) || _time.GetUtcNow() >= until || (!contingency && !_engine.GetCircuits().Any(c => c.State != "Closed")))
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
            : contingency ? "no alert of the contingency being turned on was sent: an alert of it was already sent within the repeat interval, or alerts are not wired to this session"
            : report.Probes.Any(p => p.FailoverReason == nameof(FailureClass.CircuitOpen))
                ? "the circuit opened but no alert was sent: an outage of this endpoint was already reported by one of this user's processes within the repeat interval (alert-state.json in the state directory)"
                : "no outage alert was sent: the circuit did not open (it opens on 3 failed requests in a row, 2 timeouts in a row, or half of at least 3 requests within 30 seconds failing; use a shorter -Interval or more probes)");
    }

    private async Task RecoverAsync(DrillReport report, DrillOptions o, BackendEndpoint cloud, DrillGatewayClient? gateway, Func<int> nextSeq, Action<string, string, int, double> progress, CancellationToken ct)
    {
        var step = Step(report, "Recovery");
        var unblockAt = _time.GetUtcNow();
        var deadline = unblockAt + o.RecoveryTimeout;
        var probe = o.Probes.FirstOrDefault(p => p.Prompt is not null) ?? new DrillProbe("recovery") { Prompt = DrillOptions.DefaultPrompt };
        DrillProbeResult? served = null, gatewayServed = null;
        IReadOnlyList<DrillGatewayCircuit> gatewayCircuits = [];
        while (_time.GetUtcNow() < deadline)
        {
            var left = (deadline - _time.GetUtcNow()).TotalSeconds;
            var waiting = false;
            if (served is null)
            {
                // While the circuit is open no request may reach the cloud: its background probe (every probe interval) is
                // what brings the cloud back, so recovery takes about one probe interval, not a break duration.
                var circuit = _engine.GetCircuits().FirstOrDefault(c => c.Endpoint == cloud.Display);
                if (circuit is { State: "Open" })
                {
                    progress("Recovery", circuit.NextProbe is { } next ? $"Waiting for the cloud's probe (next at {next.ToLocalTime():HH:mm:ss})" : "Waiting for the cloud's probe", 95, left);
                    waiting = true;
                }
                else
                {
                    progress("Recovery", "Checking that the cloud serves again", 97, left);
                    var r = await PromptAsync(probe, o, o.Plan, "Recovery", nextSeq(), ct).ConfigureAwait(false);
                    AddProbe(report, r);
                    if (r.Backend == nameof(BackendRole.Cloud))
                    {
                        served = r;
                    }
                }
            }

            if (gateway is not null && gatewayServed is null)
            {
                // The gateway's own circuit: its background probe brings the cloud back for the applications.
                gatewayCircuits = await gateway.CircuitsAsync(ct).ConfigureAwait(false);
                if (gatewayCircuits.Any(c => c.State == "Open"))
                {
                    progress("Recovery", "Waiting for the gateway's probe of the cloud", 95, left);
                    waiting = true;
                }
                else
                {
                    progress("Recovery", "Checking that the gateway serves from the cloud again", 98, left);
                    var r = await GatewayPromptAsync(gateway, probe, o, "Recovery", nextSeq(), ct).ConfigureAwait(false);
                    AddProbe(report, r);
                    if (r.Backend == nameof(BackendRole.Cloud))
                    {
                        gatewayServed = r;
                    }
                }
            }

            if (served is not null && (gateway is null || gatewayServed is not null))
            {
                break;
            }

            var pause = waiting ? TimeSpan.FromMilliseconds(100) : Min(o.Interval, TimeSpan.FromSeconds(2));
            await Task.Delay(Min(pause, deadline - _time.GetUtcNow() is var d && d > TimeSpan.Zero ? d : TimeSpan.Zero), _time, ct).ConfigureAwait(false);
        }

        var state = _engine.GetCircuits().FirstOrDefault(c => c.Endpoint == cloud.Display)?.State ?? "Closed";
        if (served is not null)
        {
            report.TimeToRecoverSeconds = Math.Round((served.Timestamp - unblockAt).TotalSeconds + served.LatencyMs / 1000, 3);
        }

        var gatewayOk = true;
        var gatewayDetail = "";
        if (gateway is not null)
        {
            if (gatewayServed is not null)
            {
                report.GatewayTimeToRecoverSeconds = Math.Round((gatewayServed.Timestamp - unblockAt).TotalSeconds + gatewayServed.LatencyMs / 1000, 3);
                gatewayCircuits = await gateway.CircuitsAsync(ct).ConfigureAwait(false);
            }

            var open = gatewayCircuits.Where(c => c.State != "Closed").ToArray();
            gatewayOk = gatewayServed is not null && open.Length == 0;
            gatewayDetail = gatewayServed is null
                ? $"; the gateway did not serve from the cloud again within {o.RecoveryTimeout.TotalSeconds:0} s{(open.Length == 0 ? "" : " (its circuit " + string.Join(", ", open.Select(c => $"{c.Endpoint} is {c.State}")) + ")")}"
                : $"; the gateway served from the cloud again after {report.GatewayTimeToRecoverSeconds:0.###} s" + (open.Length == 0 ? ", its circuits are Closed" : ", but its circuit " + string.Join(", ", open.Select(c => $"{c.Endpoint} is {c.State}")));
        }

        Close(step, served is not null && state == "Closed" && gatewayOk ? "Passed" : "Failed",
            (served is null ? $"the cloud did not serve again within {o.RecoveryTimeout.TotalSeconds:0} s of removing the block"
            : $"the cloud served again after {report.TimeToRecoverSeconds:0.###} s; the circuit is {state}") + gatewayDetail);
    }

    /// <summary>The gateway's part of the preflight: healthy, token accepted, serving from the cloud (the one the drill blocks).</summary>
    private async Task PreflightGatewayAsync(DrillReport report, DrillOptions o, DrillGatewayClient gateway, BackendEndpoint cloud, string prompt, Func<int> nextSeq, List<string> problems, CancellationToken ct)
    {
        if (await gateway.CheckAsync(ct).ConfigureAwait(false) is { } problem)
        {
            problems.Add(problem.Message);
            return;
        }

        var r = await GatewayPromptAsync(gateway, new DrillProbe("preflight-gateway") { Prompt = prompt }, o, "Preflight", nextSeq(), ct).ConfigureAwait(false);
        AddProbe(report, r);
        if (r.Backend != nameof(BackendRole.Cloud))
        {
            problems.Add($"the gateway at {o.Gateway} did not serve from the cloud (backend {r.Backend}{(r.FailoverReason is null ? "" : ", reason " + r.FailoverReason)}{(r.Error is null ? "" : ": " + r.Error)}).");
            return;
        }

        if (o.BlockMethod == DrillBlockMethod.Firewall)
        {
            // The firewall blocks the drill's cloud: a gateway configured with another cloud would never see the block.
            var circuits = await gateway.CircuitsAsync(ct).ConfigureAwait(false);
            if (circuits.Count > 0 && !circuits.Any(c => c.Endpoint == cloud.Display))
            {
                problems.Add($"the gateway's cloud is {string.Join(", ", circuits.Select(c => c.Endpoint))}, but the drill blocks {cloud.Display}: give the drill the gateway's cloud (-CloudUri or CLOUD_API_URL), or start the gateway with the drill's.");
            }
        }
    }

    /// <summary>One prompt probe through the gateway, judged like an in-process one; the route comes from the gateway's response headers.</summary>
    private async Task<DrillProbeResult> GatewayPromptAsync(DrillGatewayClient gateway, DrillProbe p, DrillOptions o, string phase, int seq, CancellationToken ct)
    {
        var at = _time.GetUtcNow();
        var a = await gateway.ProbeAsync(p.Prompt!, o.Workflow, ct).ConfigureAwait(false);
        if (a.Error is not null && a.Text.Length == 0)
        {
            return new DrillProbeResult
            {
                Sequence = seq, Probe = p.Name, Phase = phase, Timestamp = at, Path = DrillPath.Gateway, Backend = a.Backend, FailoverReason = a.FailoverReason,
                LatencyMs = Math.Round(a.LatencyMs, 1), Error = a.Error, RequestId = a.RequestId,
            };
        }

        return Result(p, o, phase, seq, at, a.Backend, a.FailoverReason, a.Text, a.LatencyMs, a.RequestId, RouteReported(o, a.Backend, a.FailoverReason), a.Error, DrillPath.Gateway);
    }

    /// <summary>
    /// For a response whose line cannot be seen (a script block's, the gateway's): served by Ollama with the reason the
    /// block causes (Contingency for a contingency block, a failure class for the others).
    /// </summary>
    private static bool RouteReported(DrillOptions o, string? backend, string? reason) =>
        backend == nameof(BackendRole.Ollama) && reason is { Length: > 0 } && (reason == nameof(FailureClass.Contingency)) == (o.BlockMethod == DrillBlockMethod.Contingency);

    /// <summary>Turns the contingency block off; returns the problems (empty when it is gone).</summary>
    private static IReadOnlyList<string> RemoveContingency(DrillOptions o)
    {
        try
        {
            o.Contingency.Disable(o.ContingencyScope, [o.Workflow]);
            return [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or InvalidDataException)
        {
            return [$"contingency for the workflow '{o.Workflow}' ({o.ContingencyScope} scope) could not be turned off: {e.Message}"];
        }
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
            return responses.Select(r => Result(p, o, phase, nextSeq(), at, r.Backend, r.FailoverReason, r.Text, r.LatencyMs, r.RequestId, RouteReported(o, r.Backend, r.FailoverReason), null)).ToArray();
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
            var line = o.BlockMethod == DrillBlockMethod.Contingency ? FailoverEngine.ContingencyLine : FailoverEngine.FailoverLine;
            return Result(p, o, phase, seq, at, r.Backend, r.FailoverReason, r.Text, r.LatencyMs, r.RequestId, observer.Lines.Any(l => l.StartsWith(line, StringComparison.Ordinal)), null);
        }
        catch (AiRequestException e)
        {
            return new DrillProbeResult { Sequence = seq, Probe = p.Name, Phase = phase, Timestamp = at, Error = TerminalSafe.Clean(e.Message), Backend = "None", FailoverReason = e.Failure.ToString() };
        }
    }

    private static DrillProbeResult Result(DrillProbe p, DrillOptions o, string phase, int seq, DateTimeOffset at, string backend, string? reason, string text, double latencyMs, string? requestId,
        bool line, string? error, string path = DrillPath.InProcess)
    {
        bool quality;
        string? qualityError = null;
        try
        {
            quality = (p.Quality ?? o.QualityCheck ?? (t => !string.IsNullOrWhiteSpace(t)))(text);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            quality = false;
            qualityError = "the quality check failed: " + e.Message;
        }

        var passed = phase switch
        {
            "Failover" => backend == nameof(BackendRole.Ollama) && line && quality,
            "Recovery" => backend == nameof(BackendRole.Cloud) && quality,
            _ => quality,
        };
        return new DrillProbeResult
        {
            Sequence = seq, Probe = p.Name, Phase = phase, Timestamp = at, Path = path, Backend = backend, FailoverReason = reason,
            FailoverLineLogged = line, QualityPassed = quality, Passed = passed, LatencyMs = Math.Round(latencyMs, 1), Error = TerminalSafe.Clean(error ?? qualityError),
            Answer = TerminalSafe.Clean(text, 200), // the model's text came from the network
            RequestId = requestId is { Length: > 0 } id ? id : null,
        };
    }

    private static string Why(DrillProbeResult r) =>
        r.Error ?? (r.Backend != nameof(BackendRole.Ollama) ? $"served by {r.Backend}" : !r.FailoverLineLogged ? (r.Path == DrillPath.Gateway ? $"no expected failover reason in the gateway's headers ({r.FailoverReason ?? "none"})" : "no failover line") : !r.QualityPassed ? "the answer failed the quality check" : "failed");

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
        report.Log?.Invoke($"Probe #{r.Sequence} ({r.Phase}, {(r.Path == DrillPath.Gateway ? "through the gateway" : "in process")}, '{r.Probe}'): {(r.Backend is null or "None" ? "no backend served it" : "served by " + r.Backend)} in {r.LatencyMs:0} ms"
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
