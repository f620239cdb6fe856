using System.Diagnostics;
using System.Management.Automation;
using System.Security;
using System.Text.Json;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.PowerShellTests;

/// <summary>
/// Enable/Disable/Get-AiContingency, Get-AiContingencyLog, the alert cmdlets and the drill cmdlets, through a real
/// PowerShell. They set OLLAMACONTINUITY_STATE_DIR (process-wide), so they run in the serial collection.
/// </summary>
[Collection("Process environment")]
public sealed class ContingencyCmdletTests : StandInBackendsTest
{
    private readonly string? _savedStateDir = Environment.GetEnvironmentVariable("OLLAMACONTINUITY_STATE_DIR");
    private readonly string _state = TestPaths.New("ps-contingency");
    private WebhookListener _hook = null!;
    private ModuleSession _s = null!;

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        Environment.SetEnvironmentVariable("OLLAMACONTINUITY_STATE_DIR", _state);
        _hook = WebhookListener.Start();
        _s = new ModuleSession();
    }

    public override async Task DisposeAsync()
    {
        _s.Invoke("Disable-AiContingency -Scope User -Confirm:$false; Disable-AiContingency -Scope Process -Confirm:$false; Set-AiContinuityAlert -Clear -Scope Process -Confirm:$false");
        _s.Dispose();
        Environment.SetEnvironmentVariable("OLLAMACONTINUITY_STATE_DIR", _savedStateDir);
        await base.DisposeAsync();
        await _hook.DisposeAsync();
        try { Directory.Delete(_state, true); } catch (IOException) { }
    }

    private Dictionary<string, object?> Vars() => new()
    {
        ["cloudUri"] = Cloud.ChatUri.ToString(),
        ["ollamaUri"] = Ollama.BaseUri.ToString(),
        ["key"] = Secure("sk-ps-contingency-4c2e9a"),
        ["log"] = Path.Combine(_state, "requests.jsonl"),
        ["hook"] = _hook.Uri.ToString(),
    };

    private const string Common = "-CloudUri $cloudUri -CloudApiKey $key -OllamaUri $ollamaUri -CloudTimeoutSec 2 -OllamaTimeoutSec 5 -LogPath $log";

    private static SecureString Secure(string s) => new System.Net.NetworkCredential("", s).SecurePassword;

    private static object? P(PSObject o, string name) => o.Properties[name]?.Value;

    [Fact]
    public void Selective_contingency_keeps_a_workflow_off_the_cloud_and_is_logged_then_disabled()
    {
        var enabled = Assert.Single(_s.Invoke("Enable-AiContingency -Workflow 'hr-*' -Reason 'stays on premises' -Confirm:$false", Vars()));
        Assert.Equal("OllamaContinuity.Contingency.ContingencyStatus", enabled.TypeNames[0]);
        Assert.Equal(true, P(enabled, "Changed"));
        Assert.Equal("User", P(enabled, "Source"));

        var hr = Assert.Single(_s.Invoke($"Invoke-AiRequest 'salary review for Alice' {Common} -Workflow hr-payroll", Vars()));
        var other = Assert.Single(_s.Invoke($"Invoke-AiRequest 'slogan' {Common} -Workflow marketing", Vars()));
        Assert.Equal("Ollama", P(hr, "Backend")?.ToString());
        Assert.Equal("Contingency", P(hr, "FailoverReason"));
        Assert.Equal("User", P(hr, "ContingencySource"));
        Assert.Equal("Cloud", P(other, "Backend")?.ToString());
        Assert.Equal(1, Cloud.Hits);
        Assert.DoesNotContain(Cloud.Requests, r => r.Body.Contains("Alice"));

        var verdict = Assert.Single(_s.Invoke("Get-AiContingency -Workflow hr-payroll"));
        Assert.Equal(true, P(verdict, "Active"));
        Assert.Contains(_s.Invoke("Get-AiContingency"), o => (string?)P(o, "Workflow") == "hr-*");

        var logged = Assert.Single(_s.Invoke("Get-AiContingencyLog -Workflow 'hr-*'"));
        Assert.Equal("OllamaContinuity.Contingency.ContingencyLogEntry", logged.TypeNames[0]);
        Assert.Equal("salary review for Alice", P(logged, "Prompt"));
        Assert.Equal(P(hr, "Text"), P(logged, "Output"));
        var logFile = Path.Combine(_state, "User", "contingency-log.jsonl");
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(logFile));
        }

        var off = Assert.Single(_s.Invoke("Get-AiContingency -Source User | Disable-AiContingency -Confirm:$false"));
        Assert.Equal(true, P(off, "Changed"));
        Assert.Equal("Cloud", P(Assert.Single(_s.Invoke($"Invoke-AiRequest 'again' {Common} -Workflow hr-payroll", Vars())), "Backend")?.ToString());
        Assert.False((bool)P(Assert.Single(_s.Invoke("Disable-AiContingency -Workflow 'hr-*' -Confirm:$false")), "Changed")!);
    }

    [Fact]
    public void An_open_circuit_shows_as_Automatic_contingency_and_its_requests_are_logged()
    {
        var vars = Vars();
        var refused = FakeAiServer.RefusedUri();
        vars["cloudUri"] = refused.ToString();
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal("Ollama", P(Assert.Single(_s.Invoke($"Invoke-AiRequest 'outage {i}' {Common} -Workflow auto-wf", vars)), "Backend")?.ToString());
        }

        var auto = Assert.Single(_s.Invoke("Get-AiContingency -Source Automatic | Where-Object { $_.Endpoint -like \"*:$port/*\" }", new Dictionary<string, object?> { ["port"] = refused.Port }));
        Assert.Equal(true, P(auto, "Active"));
        Assert.NotNull(P(auto, "Since"));
        Assert.NotNull(P(auto, "Until"));
        Assert.Contains("ConnectionRefused", (string?)P(auto, "Reason"));
        var logged = _s.Invoke("Get-AiContingencyLog -Workflow auto-wf");
        Assert.Contains(logged, e => (string?)P(e, "ContingencySource") == "Automatic" && (string?)P(e, "Prompt") == "outage 3");
    }

    [Fact]
    public void WhatIf_on_Enable_changes_nothing()
    {
        var result = _s.Invoke("Enable-AiContingency -Workflow legal -WhatIf");
        Assert.Empty(result);
        Assert.Contains("What if:", _s.Host.TestUI.Text);
        Assert.Contains("Enable contingency", _s.Host.TestUI.Text);
        Assert.False(File.Exists(Path.Combine(_state, "User", "contingency.json")));
        // Another test's open circuit may show as Automatic; no manual entry may exist.
        Assert.DoesNotContain(P(Assert.Single(_s.Invoke("Get-AiContingency -Workflow legal")), "Source") as string, new[] { "User", "Process", "Machine" });
    }

    [Theory]
    [InlineData(0, 1)] // "Yes": served by Ollama
    [InlineData(1, 0)] // "No": nothing is sent
    public void RequireApproval_asks_the_host_on_the_pipeline_thread_before_anything_is_sent(int answer, int expectedOllamaHits)
    {
        // The request starts on the pipeline thread (no thread-pool hop): the contingency's verbose line and its
        // approval prompt come before the first await, and must reach the host there without a deadlock.
        _s.Invoke("Enable-AiContingency -Workflow finance -RequireApproval -Scope Process -Confirm:$false");
        _s.Host.ChoiceAnswers.Enqueue(answer);

        var result = _s.Invoke($"Invoke-AiRequest 'ledger' {Common} -Workflow finance -Verbose", Vars());

        Assert.Single(_s.Host.Prompts);
        Assert.Equal(expectedOllamaHits, result.Count);
        Assert.Equal(expectedOllamaHits, Ollama.Hits);
        Assert.Equal(0, Cloud.Hits);
        Assert.Contains(_s.Streams!.Verbose, v => v.Message.StartsWith("Contingency mode active", StringComparison.Ordinal));
    }

    [Fact]
    public void RequireApproval_in_a_non_interactive_session_fails_clearly()
    {
        _s.Invoke("Enable-AiContingency -Workflow finance -RequireApproval -Scope Process -Confirm:$false");
        _s.Host.Interactive = false;

        Assert.Empty(_s.Invoke($"Invoke-AiRequest 'ledger' {Common} -Workflow finance", Vars()));

        var error = Assert.Single(_s.Streams!.Error);
        Assert.Equal("FailoverNotApproved,OllamaContinuity.Commands.InvokeAiRequestCommand", error.FullyQualifiedErrorId);
        Assert.Contains("Contingency is on (Process)", error.ToString());
        Assert.Equal(0, Ollama.Hits);
        Assert.Equal(0, Cloud.Hits);
    }

    [Fact]
    public void Enable_with_a_non_positive_duration_is_a_terminating_error()
    {
        Assert.Empty(_s.Invoke("Enable-AiContingency -Duration 00:00:00 -Confirm:$false"));
        var e = Assert.Single(_s.Streams!.Error);
        Assert.Equal("InvalidDuration,OllamaContinuity.Commands.EnableAiContingencyCommand", e.FullyQualifiedErrorId);
        Assert.False(File.Exists(Path.Combine(_state, "User", "contingency.json")));
    }

    [Fact]
    public void Alert_settings_never_show_the_webhook_url()
    {
        var set = Assert.Single(_s.Invoke("Set-AiContinuityAlert -WebhookUri $hook -Format Slack -Scope Process -Confirm:$false -Verbose", Vars()));
        Assert.Equal("OllamaContinuity.Alerts.AlertConfiguration", set.TypeNames[0]);
        Assert.Equal("http://127.0.0.1/***", P(set, "Webhook"));
        var get = Assert.Single(_s.Invoke("Get-AiContinuityAlert"));
        Assert.Equal("Process", P(get, "Scope"));
        Assert.Equal(true, P(get, "Effective"));

        Assert.Empty(_s.Invoke("Set-AiContinuityAlert -WebhookUri 'not a url xoxb-SECRET' -Scope Process -Confirm:$false"));
        var bad = Assert.Single(_s.Streams!.Error);
        Assert.Equal("InvalidWebhookUri,OllamaContinuity.Commands.SetAiContinuityAlertCommand", bad.FullyQualifiedErrorId);
        Assert.DoesNotContain("SECRET", bad.ToString() + bad.ErrorDetails?.Message + bad.Exception.Message);

        var everything = string.Join("\n", set.Properties.Select(p => p.Value?.ToString())) + _s.Host.TestUI.Text +
                         string.Join("\n", _s.Streams!.Verbose.Select(v => v.Message));
        Assert.DoesNotContain("SECRET", everything);
        Assert.DoesNotContain("CANARY", everything);
        Assert.Empty(_s.Invoke("Set-AiContinuityAlert -Clear -Scope Process -Confirm:$false | Where-Object { $_.Webhook }"));
    }

    [Fact]
    public void Simulated_drill_with_prompt_and_script_block_probes_passes_and_writes_its_report()
    {
        _s.Invoke("Set-AiContinuityAlert -WebhookUri $hook -Scope Process -NoSystemLog -Confirm:$false", Vars());
        var report = Path.Combine(_state, "drill.json");
        var vars = Vars();
        vars["report"] = report;

        var result = _s.Invoke($"Start-FailoverDrill -Probe 'drill prompt', {{ Invoke-AiRequest 'workflow step' {Common} -Workflow team }} -Duration 00:00:02 -Interval 00:00:00.4 -QualityCheck {{ $_ -like '*reply*' }} {Common} -ReportPath $report -RecoveryTimeout 00:01:30 -Confirm:$false", vars);

        Assert.True(result.Count == 1, string.Join("\n", _s.Streams!.Error.Select(e => e.ToString())));
        var r = result[0];
        Assert.Equal("OllamaContinuity.Drill.DrillReport", r.TypeNames[0]);
        Assert.True("Passed" == (string?)P(r, "Outcome"), string.Join("\n", _s.Streams!.Error.Select(e => e.ToString())));
        Assert.Empty(_s.Streams!.Error);
        var json = JsonDocument.Parse(File.ReadAllText(report)).RootElement;
        Assert.Equal("Passed", json.GetProperty("outcome").GetString());
        var failover = json.GetProperty("probes").EnumerateArray().Where(p => p.GetProperty("phase").GetString() == "Failover").ToArray();
        Assert.Contains(failover, p => p.GetProperty("probe").GetString()!.StartsWith("scriptblock"));
        Assert.All(failover, p => Assert.Equal("Ollama", p.GetProperty("backend").GetString()));
        Assert.Contains(_s.Streams.Progress, p => p.CurrentOperation == "Phase: Failover" && p.SecondsRemaining > 0);
        Assert.Contains(_hook.Calls, c => c.Body.Contains("CircuitOpened") && c.Body.Contains(Cloud.Port.ToString()));
        var delivered = _s.Invoke("Get-AiContinuityAlert -Delivery -Since $since", new Dictionary<string, object?> { ["since"] = DateTime.Now.AddMinutes(-5) });
        Assert.Contains(delivered, d => P(d, "Kind")?.ToString() == "CircuitOpened" && (bool)P(d, "Succeeded")! && (string?)P(d, "Target") == "http://127.0.0.1/***");
        Assert.False(File.Exists(Path.Combine(_state, "User", "drill-block.json")));
        Assert.Equal("Cloud", P(Assert.Single(_s.Invoke($"Invoke-AiRequest 'after the drill' {Common}", Vars())), "Backend")?.ToString());
    }

    [Fact]
    public void Firewall_drill_WhatIf_prints_the_plan_and_touches_nothing()
    {
        var result = _s.Invoke($"Start-FailoverDrill -BlockMethod Firewall -WhatIf {Common}", Vars());

        Assert.Empty(result);
        var text = _s.Host.TestUI.Text;
        Assert.Contains("What if:", text);
        Assert.Contains("127.0.0.1", text);
        Assert.True(text.Contains("reject with tcp reset") || text.Contains("REJECT"), text);
        Assert.Equal(0, Cloud.Hits);
        Assert.Equal(0, Ollama.Hits);
        Assert.False(File.Exists(Path.Combine(_state, "User", "drill-block.json")));
    }

    [Fact]
    public void Drill_preflight_failure_reports_and_writes_DrillNotStarted()
    {
        Cloud.Fault = FaultSpec.Http(503);
        var r = Assert.Single(_s.Invoke($"Start-FailoverDrill -Duration 00:00:02 -SkipAlertCheck {Common} -Confirm:$false", Vars()));
        Assert.Equal("NotStarted", P(r, "Outcome"));
        var error = Assert.Single(_s.Streams!.Error);
        Assert.Equal("DrillNotStarted,OllamaContinuity.Commands.StartFailoverDrillCommand", error.FullyQualifiedErrorId);
        Assert.Contains("did not answer", error.ToString());
    }

    [Fact]
    public void Stopping_a_running_drill_removes_the_block_and_Stop_FailoverDrill_finds_nothing_left()
    {
        _s.Runspace.SessionStateProxy.SetVariable("key", Secure("sk-ps-contingency-4c2e9a"));
        using var ps = _s.Create($"Start-FailoverDrill -Duration 00:05:00 -Interval 00:00:00.3 -SkipAlertCheck -CloudUri '{Cloud.ChatUri}' -CloudApiKey $key -OllamaUri '{Ollama.BaseUri}' -Confirm:$false");
        var async = ps.BeginInvoke();
        // Machine-wide for root or an administrator (any administrator's Stop-FailoverDrill finds it), else per user.
        var marker = Path.Combine(_state, Environment.IsPrivilegedProcess ? "Machine" : "User", "drill-block.json");
        var sw = Stopwatch.StartNew();
        while (Ollama.Hits < 4 && sw.Elapsed < TimeSpan.FromSeconds(20))
        {
            Thread.Sleep(20);
        }

        Assert.True(File.Exists(marker), "no marker while the block is on");
        ps.Stop();
        try
        {
            ps.EndInvoke(async);
        }
        catch (PipelineStoppedException)
        {
        }

        Assert.False(File.Exists(marker));
        var stop = Assert.Single(_s.Invoke("Stop-FailoverDrill -Confirm:$false"));
        Assert.Equal(false, P(stop, "Found"));
        // The endpoint's circuit may still be open, but the block is gone: another path on the same host and port (its
        // own circuit) reaches the fake cloud, which answers 404 (RequestRejected), not a refused connection.
        var vars = Vars();
        vars["cloudUri"] = new Uri(Cloud.BaseUri, "/v1/other").ToString();
        Assert.Empty(_s.Invoke($"Invoke-AiRequest 'after stop' {Common}", vars));
        Assert.Equal("RequestRejected,OllamaContinuity.Commands.InvokeAiRequestCommand", Assert.Single(_s.Streams!.Error).FullyQualifiedErrorId);
    }
}
