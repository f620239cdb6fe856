using System.Text.Json;
using OllamaContinuity.Alerts;
using OllamaContinuity.Contingency;
using OllamaContinuity.Drill;
using OllamaContinuity.Failover;
using OllamaContinuity.Failover.Circuit;
using OllamaContinuity.Native;
using OllamaContinuity.Tests.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Drill;

public sealed class DrillTests : StandInBackendsTest
{
    private readonly string _dir = TestPaths.New("drill-tests");
    private WebhookListener _hook = null!;

    internal static readonly CircuitOptions QuickCircuit = new() { MinimumThroughput = 3, SamplingDuration = TimeSpan.FromSeconds(10), ProbeInterval = TimeSpan.FromMilliseconds(500) };

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        _hook = WebhookListener.Start();
        Directory.CreateDirectory(_dir);
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await _hook.DisposeAsync();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private string Marker => Path.Combine(_dir, "drill-block.json");

    private (FailoverEngine Engine, AlertDispatcher Alerts, FailoverDrill Drill) Create(bool alertsConfigured = true)
    {
        var engine = new FailoverEngine(new FailoverEngineOptions { Circuit = QuickCircuit });
        var settings = alertsConfigured ? new AlertSettings { WebhookUri = _hook.Uri, SystemLog = false } : null;
        var alerts = new AlertDispatcher(TimeProvider.System, () => settings, engine.HttpPool.CreateClient, null, () => Path.Combine(_dir, "alerts.jsonl"));
        ContinuityRuntime.Attach(engine, null, null, alerts);
        return (engine, alerts, new FailoverDrill(engine, alerts, () => settings));
    }

    private DrillOptions Options(TimeSpan? duration = null) => new()
    {
        Plan = Harness.Plan(Harness.Cloud(Cloud), Path.Combine(_dir, "requests.jsonl"), Harness.Ollama(Ollama)),
        Duration = duration ?? TimeSpan.FromSeconds(2.5),
        Interval = TimeSpan.FromMilliseconds(300),
        RecoveryTimeout = TimeSpan.FromSeconds(15),
        AlertTimeout = TimeSpan.FromSeconds(5),
        MarkerPath = Marker,
        Runner = new RecordingCommandRunner(),
    };

    [Fact]
    public async Task Simulated_drill_fails_over_alerts_recovers_and_reports_in_every_format()
    {
        var (engine, _, drill) = Create();
        using var _ = engine;
        var phases = new List<DrillProgress>();

        var report = await drill.RunAsync(Options(), new SyncProgress<DrillProgress>(phases.Add));

        Assert.True(report.Outcome == "Passed", string.Join("\n", report.Failures));
        Assert.Equal(["Preflight", "Block", "Failover", "Alert", "Unblock", "Recovery"], report.Steps.Select(s => s.Name));
        var during = report.Probes.Where(p => p.Phase == "Failover").ToArray();
        Assert.True(during.Length >= 5, $"only {during.Length} probes");
        Assert.All(during, p =>
        {
            Assert.Equal("Ollama", p.Backend);
            Assert.True(p.FailoverLineLogged);
            Assert.True(p.Passed);
        });
        Assert.Equal("ConnectionRefused", during[0].FailoverReason);
        Assert.Contains(during, p => p.FailoverReason == "CircuitOpen");
        // The preflight, the circuit's background probe that closed it, and the recovery prompt: nothing reached the cloud while blocked.
        Assert.Equal(3, Cloud.Hits);
        Assert.Single(Cloud.Requests, r => r.Body.Contains(CloudProber.Prompt, StringComparison.Ordinal));
        Assert.NotNull(report.TimeToFailoverSeconds);
        Assert.NotNull(report.TimeToRecoverSeconds);
        // Recovery waits on the probe (every 0.5 s here), not on a break duration.
        Assert.InRange(report.TimeToRecoverSeconds!.Value, 0, 2);
        Assert.Equal("Closed", Assert.Single(engine.GetCircuits()).State);
        Assert.Contains(report.Alerts, a => a.Kind == ContinuityEventKind.CircuitOpened && a.Succeeded);
        Assert.True(await _hook.WaitForAsync(2, TimeSpan.FromSeconds(5)));
        Assert.Equal(["CircuitOpened", "CircuitClosed"], _hook.Calls.Select(c => JsonDocument.Parse(c.Body).RootElement.GetProperty("kind").GetString()));
        Assert.Empty(engine.HttpPool.Blocklist.Entries);
        Assert.False(File.Exists(Marker));
        Assert.Contains(phases, p => p.Phase == "Failover" && p.SecondsRemaining > 0);
        Assert.Contains(phases, p => p.Phase == "Recovery");

        var md = Path.Combine(_dir, "drill.md");
        var json = Path.Combine(_dir, "drill.json");
        var html = Path.Combine(_dir, "drill.html");
        DrillReportWriter.Write(report, md);
        DrillReportWriter.Write(report, json);
        DrillReportWriter.Write(report, html);
        Assert.StartsWith("# Failover drill report: Passed", File.ReadAllText(md));
        Assert.Contains("| Failover | Passed |", File.ReadAllText(md));
        var doc = JsonDocument.Parse(File.ReadAllText(json)).RootElement;
        Assert.Equal("Passed", doc.GetProperty("outcome").GetString());
        Assert.Equal("Simulated", doc.GetProperty("blockMethod").GetString());
        Assert.Equal(report.Probes.Count, doc.GetProperty("probes").GetArrayLength());
        Assert.True(doc.GetProperty("timeToFailoverSeconds").GetDouble() >= 0);
        var page = File.ReadAllText(html);
        Assert.StartsWith("<!DOCTYPE html>", page);
        Assert.Contains("<h2>Probes</h2>", page);
        Assert.DoesNotContain("SECRET", File.ReadAllText(md) + File.ReadAllText(json) + page);
    }

    [Fact]
    public async Task Preflight_with_the_cloud_down_reports_why_and_blocks_nothing()
    {
        Cloud.Fault = FaultSpec.Http(503);
        var (engine, _, drill) = Create();
        using var _ = engine;

        var report = await drill.RunAsync(Options());

        Assert.Equal("NotStarted", report.Outcome);
        var pre = Assert.Single(report.Steps);
        Assert.Equal("Failed", pre.Outcome);
        Assert.Contains("did not answer", pre.Detail);
        Assert.False(File.Exists(Marker));
        Assert.Empty(engine.HttpPool.Blocklist.Entries);
    }

    [Fact]
    public async Task A_failing_quality_check_fails_the_drill_and_names_the_probe()
    {
        var (engine, _, drill) = Create();
        using var _ = engine;
        var o = Options(TimeSpan.FromSeconds(1)) with
        {
            Probes = [new DrillProbe("invoice-summary") { Prompt = "summarise", Quality = t => t.Contains("cloud", StringComparison.Ordinal) }],
        };

        var report = await drill.RunAsync(o);

        Assert.Equal("Failed", report.Outcome);
        var step = report.Steps.Single(s => s.Name == "Failover");
        Assert.Equal("Failed", step.Outcome);
        Assert.Contains("invoice-summary: the answer failed the quality check", step.Detail);
        Assert.Equal("Passed", report.Steps.Single(s => s.Name == "Unblock").Outcome);
    }

    [Fact]
    public async Task Without_an_alert_destination_the_alert_step_fails_clearly()
    {
        var (engine, _, drill) = Create(alertsConfigured: false);
        using var _ = engine;

        var report = await drill.RunAsync(Options(TimeSpan.FromSeconds(1.2)));

        var alert = report.Steps.Single(s => s.Name == "Alert");
        Assert.Equal("Failed", alert.Outcome);
        Assert.Contains("Set-AiContinuityAlert", alert.Detail);
    }

    [Fact]
    public async Task A_cancelled_drill_removes_its_block_and_marker()
    {
        var (engine, _, drill) = Create();
        using var _ = engine;
        using var cts = new CancellationTokenSource();
        var o = Options(TimeSpan.FromMinutes(5));
        var markerSeen = false;
        var run = drill.RunAsync(o, new SyncProgress<DrillProgress>(p =>
        {
            if (p.Phase == "Failover" && !markerSeen)
            {
                markerSeen = File.Exists(Marker); // the marker is there while the block is
                cts.CancelAfter(500); // once: Ctrl+C half a second into the block
            }
        }), cts.Token);

        var report = await run.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.True(markerSeen);
        Assert.Equal("Aborted", report.Outcome);
        Assert.Equal("Passed", report.Steps.Single(s => s.Name == "Unblock").Outcome);
        Assert.Empty(engine.HttpPool.Blocklist.Entries);
        Assert.False(File.Exists(Marker));
    }

    [Fact]
    public async Task A_block_left_behind_is_removed_by_the_next_drill_and_by_cleanup()
    {
        var (engine, _, drill) = Create();
        using var _ = engine;
        var cloud = Harness.Cloud(Cloud);
        engine.HttpPool.Blocklist.Block(cloud.Uri); // as if a drill in this session had died mid-way
        new DrillMarker { DrillId = "dead1", CloudEndpoint = cloud.Display, BlockedOrigin = cloud.Uri.GetLeftPart(UriPartial.Authority), StartedAt = DateTimeOffset.UtcNow }.Write(Marker);

        var report = await drill.RunAsync(Options(TimeSpan.FromSeconds(1.2)));

        var leftover = report.Steps[0];
        Assert.Equal("RemoveLeftoverBlock", leftover.Name);
        Assert.Contains("dead1", leftover.Detail);
        Assert.Equal("Preflight", report.Steps[1].Name);
        Assert.Equal("Passed", report.Steps[1].Outcome);

        new DrillMarker { DrillId = "dead2", CloudEndpoint = cloud.Display, BlockedOrigin = "http://127.0.0.1:1", ProcessId = -1 }.Write(Marker);
        var cleanup = await DrillCleanup.RemoveLeftoverAsync(Marker, new RecordingCommandRunner(), engine.HttpPool, default);
        Assert.True(cleanup.Found && cleanup.Removed);
        Assert.Contains("ended with its process", cleanup.Detail);
        Assert.False(File.Exists(Marker));
        Assert.False((await DrillCleanup.RemoveLeftoverAsync(Marker, new RecordingCommandRunner(), engine.HttpPool, default)).Found);
    }

    [Fact]
    public void Firewall_plans_block_outbound_only_in_their_own_table_chain_rule_or_anchor()
    {
        var addrs = new[] { System.Net.IPAddress.Parse("203.0.113.7"), System.Net.IPAddress.Parse("2001:db8::7") };
        var runner = new RecordingCommandRunner();

        var nft = Assert.Single(new OutboundBlocker(runner, OutboundFirewall.Nftables).ApplyPlan(addrs, 443));
        Assert.Equal("nft", nft.FileName);
        Assert.Contains("type filter hook output priority 0; policy accept;", nft.StandardInput);
        Assert.Contains("ip daddr { 203.0.113.7 } tcp dport 443 reject with tcp reset", nft.StandardInput);
        Assert.Contains("ip6 daddr { 2001:db8::7 } tcp dport 443 reject with tcp reset", nft.StandardInput);
        Assert.Equal("nft delete table inet ollamacontinuity_drill", Assert.Single(new OutboundBlocker(runner, OutboundFirewall.Nftables).RemovePlan()).ToString());

        var ipt = new OutboundBlocker(runner, OutboundFirewall.Iptables).ApplyPlan(addrs, 443).Select(c => c.ToString()).ToArray();
        Assert.Contains("iptables -w -A OC_DRILL -d 203.0.113.7 -p tcp --dport 443 -j REJECT --reject-with tcp-reset", ipt);
        Assert.Contains("ip6tables -w -A OC_DRILL -d 2001:db8::7 -p tcp --dport 443 -j REJECT --reject-with tcp-reset", ipt);
        Assert.Contains("iptables -w -I OUTPUT 1 -j OC_DRILL", ipt);
        Assert.DoesNotContain(ipt, c => c.Contains("INPUT"));

        var win = Assert.Single(new OutboundBlocker(runner, OutboundFirewall.WindowsFirewall).ApplyPlan(addrs, 443));
        Assert.Equal(["advfirewall", "firewall", "add", "rule", "name=OllamaContinuity Drill Block", "dir=out", "action=block", "protocol=TCP", "remoteip=203.0.113.7,2001:db8::7", "remoteport=443"], win.Arguments);

        var pf = new OutboundBlocker(runner, OutboundFirewall.Pf).ApplyPlan(addrs, 443);
        Assert.Equal("block return out quick proto tcp from any to { 203.0.113.7 2001:db8::7 } port 443\n", pf[0].StandardInput);
        Assert.Equal(["-a", "com.apple/ollamacontinuity-drill", "-f", "-"], pf[0].Arguments);
        Assert.Equal("pfctl -X 42", new OutboundBlocker(runner, OutboundFirewall.Pf).RemovePlan("42")[^1].ToString());
    }

    [Fact]
    public async Task The_plan_for_WhatIf_runs_nothing()
    {
        var (engine, _, drill) = Create();
        using var _ = engine;
        var runner = new RecordingCommandRunner();

        var plan = await drill.PlanAsync(Options() with { BlockMethod = DrillBlockMethod.Firewall, Runner = runner }, default);

        Assert.Empty(runner.Commands);
        Assert.Equal(["127.0.0.1"], plan.Addresses);
        Assert.Contains("reject with tcp reset", plan.ToString());
        Assert.Equal(0, Cloud.Hits);
        Assert.False(File.Exists(Marker));
    }
}

/// <summary>Calls the handler on the reporting thread (Progress&lt;T&gt; would post to the thread pool).</summary>
internal sealed class SyncProgress<T>(Action<T> handler) : IProgress<T>
{
    public void Report(T value) => handler(value);
}
