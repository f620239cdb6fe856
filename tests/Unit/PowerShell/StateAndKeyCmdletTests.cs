using System.Diagnostics;
using System.Management.Automation;
using System.Net;
using System.Net.Sockets;
using System.Security;
using System.Text.Json.Nodes;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.PowerShellTests;

/// <summary>
/// Issue 9, items 1 to 4 and 11 to 13, through the cmdlets: damaged state fails closed with stable error ids, damaged
/// alert settings are loud, bad log lines are skipped with a warning, and keys are checked and scrubbed. They set
/// process-wide environment variables, so they run in the serial collection.
/// </summary>
[Collection("Process environment")]
public sealed class StateAndKeyCmdletTests : StandInBackendsTest
{
    private const string Key = "sk-ps-state-9d3f1a7c5e2b8046";
    private readonly string? _savedStateDir = Environment.GetEnvironmentVariable("OLLAMACONTINUITY_STATE_DIR");
    private readonly string _state = TestPaths.New("ps-state-damage");
    private ModuleSession _s = null!;

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        Environment.SetEnvironmentVariable("OLLAMACONTINUITY_STATE_DIR", _state);
        Directory.CreateDirectory(Path.Combine(_state, "User"));
        _s = new ModuleSession();
    }

    public override async Task DisposeAsync()
    {
        _s.Dispose();
        Environment.SetEnvironmentVariable("OLLAMACONTINUITY_STATE_DIR", _savedStateDir);
        await base.DisposeAsync();
        try { Directory.Delete(_state, true); } catch (IOException) { }
    }

    private string ContingencyFile => Path.Combine(_state, "User", "contingency.json");

    private string AlertsFile => Path.Combine(_state, "User", "alerts.json");

    private Dictionary<string, object?> Vars(string? cloudUri = null) => new()
    {
        ["cloudUri"] = cloudUri ?? Cloud.ChatUri.ToString(),
        ["ollamaUri"] = Ollama.BaseUri.ToString(),
        ["key"] = Secure(Key),
        ["log"] = Path.Combine(_state, "requests.jsonl"),
    };

    private const string Common = "-CloudUri $cloudUri -CloudApiKey $key -OllamaUri $ollamaUri -CloudTimeoutSec 2 -OllamaTimeoutSec 5 -LogPath $log";

    private static SecureString Secure(string s) => new NetworkCredential("", s).SecurePassword;

    /// <summary>Runs <paramref name="command"/> with -ErrorAction Stop and returns the error record it ended with.</summary>
    private ErrorRecord Fails(string command, Dictionary<string, object?>? vars = null)
    {
        var result = _s.Invoke($"try {{ {command} -ErrorAction Stop; 'no error' }} catch {{ $_ }}", vars ?? Vars());
        var last = Assert.Single(result, o => o.BaseObject is ErrorRecord || o.BaseObject is string { } s && s == "no error");
        return Assert.IsType<ErrorRecord>(last.BaseObject);
    }

    [Theory]
    [InlineData("{\"version\":1,\"entries\":null}")]
    [InlineData("{\"version\":1,\"entries\":[{\"workflow\":\"hr-*\",\"since\":\"2026-")]
    [InlineData("\uFEFF\uFEFFgarbage")]
    public void A_damaged_contingency_file_fails_Invoke_AiRequest_closed_with_ContingencyStateUnreadable(string content)
    {
        File.WriteAllText(ContingencyFile, content);

        foreach (var wf in new[] { "-Workflow hr-payroll", "-Workflow anything", "" })
        {
            var e = Fails($"Invoke-AiRequest 'salary review for Alice' {Common} {wf}");
            Assert.Equal("ContingencyStateUnreadable,OllamaContinuity.Commands.InvokeAiRequestCommand", e.FullyQualifiedErrorId);
            Assert.Equal(ErrorCategory.ReadError, e.CategoryInfo.Category);
            Assert.Contains(ContingencyFile, e.ErrorDetails.Message, StringComparison.Ordinal);
            Assert.Contains("OLLAMACONTINUITY_UNREADABLE_STATE", e.ErrorDetails.RecommendedAction, StringComparison.Ordinal);
        }

        Assert.Equal(0, Cloud.Hits);
    }

    [Fact]
    public void With_OLLAMACONTINUITY_UNREADABLE_STATE_Ollama_a_damaged_file_serves_from_Ollama_with_a_warning()
    {
        File.WriteAllText(ContingencyFile, "{\"version\":1,\"entries\":null}");
        Environment.SetEnvironmentVariable("OLLAMACONTINUITY_UNREADABLE_STATE", "Ollama");
        try
        {
            var r = Assert.Single(_s.Invoke($"Invoke-AiRequest 'q' {Common} -Workflow sales", Vars()));
            Assert.Equal("Ollama", r.Properties["Backend"].Value?.ToString());
            Assert.Contains(_s.Streams!.Warning, w => w.Message.Contains(ContingencyFile, StringComparison.Ordinal));
            Assert.Equal(0, Cloud.Hits);
        }
        finally
        {
            Environment.SetEnvironmentVariable("OLLAMACONTINUITY_UNREADABLE_STATE", null);
        }
    }

    [Fact]
    public void Entries_null_is_a_clear_error_naming_file_and_field_in_every_contingency_cmdlet()
    {
        File.WriteAllText(ContingencyFile, "{\"version\":1,\"entries\":null}");

        var get = Fails("Get-AiContingency");
        Assert.Equal("ContingencyStateUnreadable,OllamaContinuity.Commands.GetAiContingencyCommand", get.FullyQualifiedErrorId);
        Assert.Contains("'entries'", get.ErrorDetails.Message, StringComparison.Ordinal);
        Assert.Contains(ContingencyFile, get.ErrorDetails.Message, StringComparison.Ordinal);

        var verdict = Fails("Get-AiContingency -Workflow hr");
        Assert.Equal("ContingencyStateUnreadable,OllamaContinuity.Commands.GetAiContingencyCommand", verdict.FullyQualifiedErrorId);

        var enable = Fails("Enable-AiContingency -Workflow hr -Confirm:$false");
        Assert.Equal("StateFileDamaged,OllamaContinuity.Commands.EnableAiContingencyCommand", enable.FullyQualifiedErrorId);
        Assert.Contains("'entries'", enable.ErrorDetails.Message, StringComparison.Ordinal);

        var disable = Fails("Disable-AiContingency -Confirm:$false");
        Assert.Equal("StateFileDamaged,OllamaContinuity.Commands.DisableAiContingencyCommand", disable.FullyQualifiedErrorId);
        Assert.Equal("{\"version\":1,\"entries\":null}", File.ReadAllText(ContingencyFile));
    }

    [Fact]
    public void One_bad_line_in_the_contingency_log_is_skipped_with_a_warning_naming_the_line()
    {
        var log = Path.Combine(_state, "User", "contingency-log.jsonl");
        File.WriteAllLines(log, [
            "{\"timestamp\":\"2026-12-01T10:00:00Z\",\"requestId\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"output\":\"yo\"}",
            "{\"timestamp\":\"2026-12-01T10:00:01Z\",\"requestId\":\"b\",\"messages\":[{\"role\":5}]}",
            "{\"timestamp\":\"2026-12-01T10:00:02Z\",\"requestId\":\"c\"}",
        ]);

        var entries = _s.Invoke("Get-AiContingencyLog");

        Assert.Equal(["a", "c"], entries.Select(e => e.Properties["RequestId"].Value?.ToString()));
        Assert.False(_s.HadErrors);
        var w = Assert.Single(_s.Streams!.Warning);
        Assert.Contains("line 2", w.Message, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task A_fifo_given_as_the_contingency_log_is_an_error_at_once()
    {
        Skip.If(OperatingSystem.IsWindows(), "Unix only");
        var fifo = Path.Combine(_state, "fifo.jsonl");
        using (var p = Process.Start(new ProcessStartInfo("mkfifo", [fifo]))!)
        {
            p.WaitForExit();
            Skip.If(p.ExitCode != 0, "mkfifo is not available");
        }

        var e = await Task.Run(() => Fails("Get-AiContingencyLog -Path $fifo", new() { ["fifo"] = fifo })).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal("ContingencyLogUnreadable,OllamaContinuity.Commands.GetAiContingencyLogCommand", e.FullyQualifiedErrorId);
    }

    [Fact]
    public void A_damaged_alerts_file_is_an_error_from_Get_and_Set_AiContinuityAlert_and_a_warning_on_a_request_that_alerts()
    {
        File.WriteAllText(AlertsFile, "{\"webhookUri\":\"https://hooks.example.com/services/T0/B0/SECRETPART\",\"format\":");

        var get = Fails("Get-AiContinuityAlert");
        Assert.Equal("AlertSettingsDamaged,OllamaContinuity.Commands.GetAiContinuityAlertCommand", get.FullyQualifiedErrorId);
        Assert.Contains(AlertsFile, get.ErrorDetails.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("SECRETPART", get.ErrorDetails.Message, StringComparison.Ordinal);

        var set = Fails("Set-AiContinuityAlert -WebhookUri 'https://hooks.example.com/new' -Confirm:$false");
        Assert.Equal("AlertSettingsDamaged,OllamaContinuity.Commands.SetAiContinuityAlertCommand", set.FullyQualifiedErrorId);

        // A request where everything fails raises an alert: it says the alert may reach nobody.
        var refused = FakeAiServer.RefusedUri();
        _s.Invoke($"Invoke-AiRequest 'q' -CloudUri $cloudUri -CloudApiKey $key -OllamaUri $dead -CloudTimeoutSec 2 -OllamaTimeoutSec 2 -LogPath $log -ErrorAction SilentlyContinue",
            new Dictionary<string, object?>(Vars(refused.ToString())) { ["dead"] = FakeAiServer.RefusedUri("/").ToString() });
        Assert.Contains(_s.Streams!.Warning, w => w.Message.Contains("may reach nobody", StringComparison.Ordinal) && w.Message.Contains(AlertsFile, StringComparison.Ordinal));

        // -Clear is the way out.
        _s.Invoke("Set-AiContinuityAlert -Clear -Confirm:$false");
        Assert.False(_s.HadErrors);
    }

    [Fact]
    public void An_invalid_OLLAMACONTINUITY_ALERT_WEBHOOK_is_a_warning_that_never_shows_the_value()
    {
        Environment.SetEnvironmentVariable("OLLAMACONTINUITY_ALERT_WEBHOOK", "hooks.example.com/no-scheme-SECRETPART");
        try
        {
            _s.Invoke("Get-AiContinuityAlert");
            var w = Assert.Single(_s.Streams!.Warning, x => x.Message.Contains("OLLAMACONTINUITY_ALERT_WEBHOOK", StringComparison.Ordinal) && x.Message.Contains("ignored", StringComparison.Ordinal));
            Assert.DoesNotContain("SECRETPART", w.Message, StringComparison.Ordinal);
        }
        finally
        {
            Environment.SetEnvironmentVariable("OLLAMACONTINUITY_ALERT_WEBHOOK", null);
        }
    }

    [Theory]
    [InlineData("$null")]
    [InlineData("([System.Security.SecureString]::new())")]
    [InlineData("$blank")]
    public void An_explicit_empty_or_null_CloudApiKey_is_an_error_not_a_silent_Ollama_only(string value)
    {
        var vars = Vars();
        vars["blank"] = Secure("  \n");

        var e = Fails($"Invoke-AiRequest 'q' -CloudUri $cloudUri -CloudApiKey {value} -OllamaUri $ollamaUri -LogPath $log", vars);

        Assert.Equal("InvalidCloudApiKey,OllamaContinuity.Commands.InvokeAiRequestCommand", e.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.InvalidArgument, e.CategoryInfo.Category);
        Assert.Contains("-CloudApiKey", e.ErrorDetails.Message, StringComparison.Ordinal);
        Assert.Equal(0, Cloud.Hits);
        Assert.Equal(0, Ollama.Hits);
    }

    [Theory]
    [InlineData("sk-abc\r\nGET /smuggled HTTP/1.1\r\nHost: evil", "control character")]
    [InlineData("sk-t\u00e9st-key", "non-ASCII")]
    public async Task A_key_with_CR_LF_or_non_ASCII_is_refused_before_a_single_byte_reaches_the_socket(string key, string why)
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var uri = $"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}/v1/chat/completions";
        var accepted = listener.AcceptTcpClientAsync();
        try
        {
            var vars = Vars(uri);
            vars["bad"] = Secure(key);
            var e = Fails("Invoke-AiRequest 'q' -CloudUri $cloudUri -CloudApiKey $bad -OllamaUri $ollamaUri -LogPath $log", vars);
            Assert.Equal("InvalidCloudApiKey,OllamaContinuity.Commands.InvokeAiRequestCommand", e.FullyQualifiedErrorId);
            Assert.Contains(why, e.ErrorDetails.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("smuggled", e.ErrorDetails.Message, StringComparison.Ordinal);

            // The same from the environment.
            Environment.SetEnvironmentVariable("CLOUD_API_KEY", key);
            var env = Fails("Invoke-AiRequest 'q' -CloudUri $cloudUri -OllamaUri $ollamaUri -LogPath $log", vars);
            Assert.Equal("InvalidCloudApiKey,OllamaContinuity.Commands.InvokeAiRequestCommand", env.FullyQualifiedErrorId);
            Assert.Contains("CLOUD_API_KEY", env.ErrorDetails.Message, StringComparison.Ordinal);

            await Task.Delay(200);
            Assert.False(accepted.IsCompleted, "a connection reached the cloud socket");
            Assert.Equal(0, Ollama.Hits);
        }
        finally
        {
            Environment.SetEnvironmentVariable("CLOUD_API_KEY", null);
            listener.Stop();
        }
    }

    [Fact]
    public void A_key_read_with_a_trailing_newline_is_trimmed_and_sent_as_one_clean_header()
    {
        var vars = Vars();
        vars["raw"] = Secure(Key + "\r\n");

        var r = Assert.Single(_s.Invoke("Invoke-AiRequest 'q' -CloudUri $cloudUri -CloudApiKey $raw -OllamaUri $ollamaUri -LogPath $log", vars));

        Assert.Equal("Cloud", r.Properties["Backend"].Value?.ToString());
        var sent = Assert.Single(Cloud.Requests);
        Assert.Equal("Bearer " + Key, sent.Headers.First(h => h.Key.Equals("Authorization", StringComparison.OrdinalIgnoreCase)).Value);
    }

    [Fact]
    public void A_cloud_that_echoes_the_key_at_the_300th_character_leaks_no_piece_of_it_into_the_error_or_warnings()
    {
        var message = new string('m', 292) + Key + " is not valid";
        Cloud.Fault = FaultSpec.Http(401, new JsonObject { ["error"] = new JsonObject { ["message"] = message } }.ToJsonString());

        var result = _s.Invoke($"try {{ Invoke-AiRequest 'q' -CloudUri $cloudUri -CloudApiKey $key -OllamaUri $dead -CloudTimeoutSec 2 -OllamaTimeoutSec 2 -LogPath $log -ErrorAction Stop }} catch {{ $_ }}",
            new Dictionary<string, object?>(Vars()) { ["dead"] = FakeAiServer.RefusedUri("/").ToString() });

        var e = Assert.IsType<ErrorRecord>(Assert.Single(result).BaseObject);
        Assert.Equal("AllBackendsFailed,OllamaContinuity.Commands.InvokeAiRequestCommand", e.FullyQualifiedErrorId);
        var attempts = (System.Collections.IEnumerable)((dynamic)e.Exception).Attempts;
        var texts = new List<string> { e.Exception.Message, e.ErrorDetails.Message, e.ToString() };
        texts.AddRange(_s.Streams!.Warning.Select(w => w.Message));
        texts.AddRange(attempts.Cast<object>().Select(a => PSObject.AsPSObject(a).Properties["Detail"].Value?.ToString() ?? ""));
        Assert.Contains(texts, t => t.Contains("***", StringComparison.Ordinal));
        foreach (var piece in Enumerable.Range(0, Key.Length - 7).Select(i => Key.Substring(i, 8)))
        {
            Assert.DoesNotContain(texts, t => t.Contains(piece, StringComparison.Ordinal));
        }
    }
}
