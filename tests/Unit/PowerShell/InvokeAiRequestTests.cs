using System.Diagnostics;
using System.Management.Automation;
using System.Net;
using System.Runtime.Loader;
using System.Security;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.PowerShellTests;

public sealed class InvokeAiRequestTests : StandInBackendsTest
{
    private const string Canary = "sk-CANARY-ps-1d5e0c7a9b3f";
    private ModuleSession _s = null!;
    private string _log = null!;

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        _s = new ModuleSession();
        _log = Path.Combine(TestPaths.New("ps-tests"), "requests.jsonl");
    }

    public override async Task DisposeAsync()
    {
        _s.Dispose();
        await base.DisposeAsync();
    }

    private Dictionary<string, object?> Vars(Uri? cloud = null) => new()
    {
        ["cloudUri"] = (cloud ?? Cloud.ChatUri).ToString(),
        ["ollamaUri"] = Ollama.BaseUri.ToString(),
        ["key"] = Secure(Canary),
        ["log"] = _log,
    };

    private const string Common = "-CloudUri $cloudUri -CloudApiKey $key -OllamaUri $ollamaUri -CloudTimeoutSec 2 -OllamaTimeoutSec 5 -LogPath $log";

    private static SecureString Secure(string s)
    {
        var ss = new SecureString();
        foreach (var c in s)
        {
            ss.AppendChar(c);
        }

        ss.MakeReadOnly();
        return ss;
    }

    [Fact]
    public void Healthy_cloud_serves_and_the_output_is_typed()
    {
        var result = _s.Invoke($"Invoke-AiRequest 'What is 2+2?' {Common} -Workflow reports", Vars());
        var r = Assert.Single(result);
        Assert.Equal("OllamaContinuity.Failover.AiResponse", r.BaseObject.GetType().FullName);
        Assert.Equal("Cloud", r.Properties["Backend"].Value.ToString());
        Assert.Equal("cloud: reply to What is 2+2?", r.Properties["Text"].Value);
        Assert.Equal("reports", r.Properties["Workflow"].Value);
        Assert.Equal("", r.Properties["FailoverReason"].Value);
        Assert.Equal(0, Ollama.Hits);
    }

    [Fact]
    public void Pipeline_prompts_fail_over_one_by_one_with_the_seed_verbose_line()
    {
        Cloud.Fault = FaultSpec.Http(503);
        var result = _s.Invoke($"'one','two','three' | Invoke-AiRequest {Common} -Verbose", Vars());
        Assert.Equal(3, result.Count);
        Assert.All(result, r => Assert.Equal("Ollama", r.Properties["Backend"].Value.ToString()));
        Assert.Equal(new[] { "ollama: reply to one", "ollama: reply to two", "ollama: reply to three" }, result.Select(r => (string)r.Properties["Text"].Value));
        Assert.Equal(3, _s.Streams!.Verbose.Count(v => v.Message.StartsWith("Cloud unavailable, falling back to Ollama", StringComparison.Ordinal)));
        Assert.Equal("ServerError", result[0].Properties["FailoverReason"].Value);
    }

    [Fact]
    public void All_backends_failing_is_a_non_terminating_error_and_the_pipeline_goes_on()
    {
        Cloud.Fault = FaultSpec.Http(502);
        Ollama.Script = n => n == 1 ? FaultSpec.Http(500) : FaultSpec.Ok;
        var result = _s.Invoke($"'first','second' | Invoke-AiRequest {Common}", Vars());
        var ok = Assert.Single(result);
        Assert.Equal("ollama: reply to second", ok.Properties["Text"].Value);
        var error = Assert.Single(_s.Streams!.Error);
        Assert.Equal("AllBackendsFailed,OllamaContinuity.Commands.InvokeAiRequestCommand", error.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.ConnectionError, error.CategoryInfo.Category);
        Assert.Contains("Cloud", error.ToString());
        Assert.Contains("Ollama", error.ToString());
        Assert.Equal("first", error.TargetObject);
    }

    [Fact]
    public void ErrorAction_Stop_stops_with_the_stable_error_id()
    {
        Cloud.Fault = FaultSpec.Http(502);
        Ollama.Fault = FaultSpec.Http(500);
        var e = Assert.ThrowsAny<RuntimeException>(() => _s.Invoke($"'a','b' | Invoke-AiRequest {Common} -ErrorAction Stop", Vars()));
        Assert.Equal("AllBackendsFailed,OllamaContinuity.Commands.InvokeAiRequestCommand", e.ErrorRecord.FullyQualifiedErrorId);
        Assert.Equal(1, Ollama.Hits); // stopped at the first prompt
    }

    [Fact]
    public void WhatIf_names_the_route_and_sends_nothing()
    {
        var result = _s.Invoke($"Invoke-AiRequest 'hello' {Common} -WhatIf", Vars());
        Assert.Empty(result);
        Assert.Contains("What if: Performing the operation \"Send AI request\" on target \"Cloud " + Cloud.ChatUri, _s.Host.TestUI.Text);
        Assert.Contains("then Ollama " + Ollama.BaseUri + "api/chat", _s.Host.TestUI.Text);
        Assert.Equal(0, Cloud.Hits + Ollama.Hits);
    }

    [Fact]
    public void Confirm_asks_before_sending_and_No_sends_nothing()
    {
        _s.Host.ChoiceAnswers.Enqueue(2); // [Y] Yes [A] Yes to All [N] No
        var result = _s.Invoke($"Invoke-AiRequest 'hello' {Common} -Confirm", Vars());
        Assert.Empty(result);
        Assert.Contains("Send AI request", Assert.Single(_s.Host.Prompts));
        Assert.Equal(0, Cloud.Hits + Ollama.Hits);
    }

    [Fact]
    public void A_slow_request_gets_a_progress_bar_naming_the_backend_being_asked_and_it_completes()
    {
        Cloud.Fault = new FaultSpec(FaultKind.SlowFirstByte) { Delay = TimeSpan.FromMilliseconds(900) };
        _s.Invoke($"Invoke-AiRequest 'hello' {Common}", Vars());
        var progress = _s.Streams!.Progress;
        Assert.Contains(progress, p => p.StatusDescription.StartsWith("Asking Cloud at " + Cloud.ChatUri, StringComparison.Ordinal));
        Assert.Equal(ProgressRecordType.Completed, progress[^1].RecordType);

        Cloud.Fault = FaultSpec.Http(503);
        Ollama.Fault = new FaultSpec(FaultKind.SlowFirstByte) { Delay = TimeSpan.FromMilliseconds(900) };
        _s.Invoke($"Invoke-AiRequest 'hello' {Common}", Vars());
        progress = _s.Streams!.Progress;
        Assert.Contains(progress, p => p.StatusDescription.StartsWith("Falling back to Ollama at " + Ollama.BaseUri, StringComparison.Ordinal));
        Assert.Equal(ProgressRecordType.Completed, progress[^1].RecordType);
    }

    [Fact]
    public void A_sub_second_request_writes_no_progress_record()
    {
        Cloud.Fault = FaultSpec.Http(503);
        var result = _s.Invoke($"Invoke-AiRequest 'hello' {Common}", Vars());
        Assert.Equal("Ollama", Assert.Single(result).Properties["Backend"].Value);
        Assert.Empty(_s.Streams!.Progress);
    }

    [Fact]
    public void ConfirmFailover_in_a_non_interactive_session_fails_clearly_and_never_falls_back()
    {
        Cloud.Fault = FaultSpec.Http(503);
        _s.Host.Interactive = false;
        var result = _s.Invoke($"Invoke-AiRequest 'secret data' {Common} -ConfirmFailover", Vars());
        Assert.Empty(result);
        var error = Assert.Single(_s.Streams!.Error);
        Assert.Equal("FailoverNotApproved,OllamaContinuity.Commands.InvokeAiRequestCommand", error.FullyQualifiedErrorId);
        Assert.Contains("not interactive", error.ToString());
        Assert.Equal(0, Ollama.Hits);
    }

    [Theory]
    [InlineData(0, 1)]  // "Yes"
    [InlineData(1, 0)]  // "No"
    public void ConfirmFailover_asks_the_host(int answer, int expectedOllamaHits)
    {
        Cloud.Fault = FaultSpec.Http(503);
        _s.Host.ChoiceAnswers.Enqueue(answer);
        var result = _s.Invoke($"Invoke-AiRequest 'x' {Common} -ConfirmFailover", Vars());
        Assert.Single(_s.Host.Prompts);
        Assert.Equal(expectedOllamaHits, Ollama.Hits);
        Assert.Equal(expectedOllamaHits, result.Count);
    }

    [Theory]
    [InlineData("-Force")]
    [InlineData("-Confirm:$false")]
    public void ConfirmFailover_with_Force_or_Confirm_false_does_not_ask(string flag)
    {
        Cloud.Fault = FaultSpec.Http(503);
        _s.Host.Interactive = false;
        var result = _s.Invoke($"Invoke-AiRequest 'x' {Common} -ConfirmFailover {flag}", Vars());
        Assert.Equal("Ollama", Assert.Single(result).Properties["Backend"].Value.ToString());
        Assert.Empty(_s.Host.Prompts);
    }

    [Theory]
    [InlineData("-CloudUri 'ftp://example.invalid/x'", "InvalidCloudUri")]
    [InlineData("-CloudUri 'not a uri'", "InvalidCloudUri")]
    [InlineData("-OllamaUri 'http://'", "InvalidOllamaUri")]
    public void Invalid_input_is_rejected_before_any_request(string args, string errorId)
    {
        // Terminating: the catch block runs, and 'after' is never reached inside the try.
        var result = _s.Invoke($"try {{ 'a','b' | Invoke-AiRequest -CloudApiKey $key {(args.Contains("-OllamaUri") ? "-CloudUri $cloudUri" : "-OllamaUri $ollamaUri")} {args}; 'after' }} catch {{ $_ }}", Vars());
        var e = (ErrorRecord)Assert.Single(result).BaseObject;
        Assert.Equal(errorId + ",OllamaContinuity.Commands.InvokeAiRequestCommand", e.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.InvalidArgument, e.CategoryInfo.Category);
        Assert.Contains("URI", e.ToString());
        Assert.Contains(args.Contains("-OllamaUri") ? "(from -OllamaUri)" : "(from -CloudUri)", e.ToString()); // the parameter's own name
        Assert.Equal(0, Cloud.Hits + Ollama.Hits);
    }

    [Fact]
    public void Empty_and_blank_prompts_are_parameter_errors()
    {
        _s.Invoke($"Invoke-AiRequest '' {Common}", Vars());
        Assert.Equal("ParameterArgumentValidationError,OllamaContinuity.Commands.InvokeAiRequestCommand", Assert.Single(_s.Streams!.Error).FullyQualifiedErrorId);
        _s.Invoke($"Invoke-AiRequest '   ' {Common}", Vars());
        Assert.Equal("EmptyPrompt,OllamaContinuity.Commands.InvokeAiRequestCommand", Assert.Single(_s.Streams!.Error).FullyQualifiedErrorId);
        Assert.Equal(0, Cloud.Hits + Ollama.Hits);
    }

    [Fact]
    public void Messages_accept_hashtables_and_objects()
    {
        var result = _s.Invoke($"Invoke-AiRequest -Messages @(@{{role='system';content='be brief'}}, [pscustomobject]@{{Role='user';Content='hi there'}}) {Common}", Vars());
        Assert.Equal("cloud: reply to hi there", Assert.Single(result).Properties["Text"].Value);
        var sent = Cloud.Requests.Single().Json!["messages"]!.AsArray();
        Assert.Equal("system", sent[0]!["role"]!.GetValue<string>());
        Assert.Equal("be brief", sent[0]!["content"]!.GetValue<string>());
    }

    [Fact]
    public void Stream_writes_tokens_to_the_host_and_returns_the_object()
    {
        Cloud.Answer = _ => "streamed answer in pieces";
        var result = _s.Invoke($"Invoke-AiRequest 'x' {Common} -Stream", Vars());
        Assert.Equal("streamed answer in pieces", Assert.Single(result).Properties["Text"].Value);
        Assert.Contains("streamed answer in pieces", _s.Host.TestUI.Text);
    }

    [Fact]
    public void Every_request_is_logged_with_the_backend_that_served_it()
    {
        // From the second request on the cloud answers 500 (its retry too).
        Cloud.Script = n => n >= 2 ? FaultSpec.Http(500) : FaultSpec.Ok;
        _s.Invoke($"'a','b' | Invoke-AiRequest {Common} -Workflow invoices", Vars());
        var lines = File.ReadAllLines(_log).Select(l => System.Text.Json.Nodes.JsonNode.Parse(l)!).ToArray();
        Assert.Equal(2, lines.Length);
        Assert.Equal(new[] { "Cloud", "Ollama" }, lines.Select(l => l["backend"]!.GetValue<string>()));
        Assert.Equal("ServerError", lines[1]["attempts"]![0]!["failureClass"]!.GetValue<string>());
        Assert.Equal(500, lines[1]["attempts"]![0]!["statusCode"]!.GetValue<int>());
        Assert.Equal(["Cloud", "Cloud", "Ollama"], lines[1]["attempts"]!.AsArray().Select(a => a!["backend"]!.GetValue<string>()));
        Assert.All(lines, l => Assert.Equal("invoices", l["workflow"]!.GetValue<string>()));
        Assert.All(lines, l => Assert.Null(l["output"]));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(_log));
        }
    }

    [Fact]
    public void The_api_key_never_appears_in_any_stream_error_or_log()
    {
        // The cloud echoes the key back in its error, as some providers do.
        Cloud.Fault = FaultSpec.Http(401, $"{{\"error\":{{\"message\":\"Incorrect API key provided: {Canary}.\",\"type\":\"invalid_request_error\",\"code\":\"invalid_api_key\"}}}}");
        Ollama.Script = n => n == 1 ? FaultSpec.Http(500) : FaultSpec.Ok;
        var result = _s.Invoke($"'a','b' | Invoke-AiRequest {Common} -Verbose -LogContent; Invoke-AiRequest 'c' {Common} -Stream -Debug", Vars());
        Assert.NotEmpty(_s.Streams!.Error);
        Assert.NotEmpty(_s.Streams.Warning);
        var everything = string.Join("\n",
            result.Select(r => r.ToString() + string.Join("|", r.Properties.Select(p => p.Value?.ToString()))),
            _s.Streams.Error.Select(e => e + "|" + e.Exception + "|" + e.ErrorDetails?.Message + "|" + e.TargetObject),
            _s.Streams.Warning.Select(w => w.Message),
            _s.Streams.Verbose.Select(v => v.Message),
            _s.Streams.Debug.Select(d => d.Message),
            _s.Streams.Information.Select(i => i.MessageData?.ToString()),
            _s.Host.TestUI.Text,
            File.ReadAllText(_log));
        Assert.Contains("invalid_api_key", everything.Replace("Incorrect API key provided: ***", "invalid_api_key"));
        Assert.DoesNotContain(Canary, everything);
        Assert.DoesNotContain(Canary[..12], everything);
    }

    [Fact]
    public void Ctrl_C_cancels_down_to_the_socket()
    {
        Cloud.Fault = new FaultSpec(FaultKind.Blackhole);
        using var ps = _s.Create($"Invoke-AiRequest 'hang' -CloudUri '{Cloud.ChatUri}' -CloudApiKey (ConvertTo-SecureString -String 'k-123456' -AsPlainText -Force -ErrorAction SilentlyContinue) -OllamaUri '{Ollama.BaseUri}' -CloudTimeoutSec 60 -LogPath '{_log}'");
        // ConvertTo-SecureString is not in the core engine: fall back to the variable.
        _s.Runspace.SessionStateProxy.SetVariable("key", Secure("k-123456"));
        ps.Commands.Clear();
        ps.AddScript($"Invoke-AiRequest 'hang' -CloudUri '{Cloud.ChatUri}' -CloudApiKey $key -OllamaUri '{Ollama.BaseUri}' -CloudTimeoutSec 60 -LogPath '{_log}'");
        var async = ps.BeginInvoke();
        var deadline = Stopwatch.StartNew();
        while (Cloud.Hits == 0 && deadline.Elapsed < TimeSpan.FromSeconds(5))
        {
            Thread.Sleep(20);
        }

        Assert.Equal(1, Cloud.Hits);
        var sw = Stopwatch.StartNew();
        ps.Stop();
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(2), $"Stop took {sw.Elapsed}");
        Assert.Throws<PipelineStoppedException>(() => ps.EndInvoke(async));
        while (Cloud.ClientAborts == 0 && sw.Elapsed < TimeSpan.FromSeconds(3))
        {
            Thread.Sleep(20);
        }

        Assert.Equal(1, Cloud.ClientAborts);
        Assert.Equal(0, Ollama.Hits);
    }

    [Fact]
    public void Module_loads_its_own_dependencies_beside_another_version()
    {
        // This test process already holds Microsoft.Extensions.Http 10.0 in the default load context.
        var theirs = typeof(Microsoft.Extensions.DependencyInjection.HttpClientFactoryServiceCollectionExtensions).Assembly;
        Assert.Equal(10, theirs.GetName().Version!.Major);
        Assert.Same(AssemblyLoadContext.Default, AssemblyLoadContext.GetLoadContext(theirs));

        var result = _s.Invoke($"Invoke-AiRequest 'isolated?' {Common}", Vars());
        Assert.Equal("Cloud", Assert.Single(result).Properties["Backend"].Value.ToString());

        var ours = AssemblyLoadContext.All.Single(c => c.Name == "OllamaContinuity");
        var http = ours.Assemblies.Single(a => a.GetName().Name == "Microsoft.Extensions.Http");
        Assert.Equal(8, http.GetName().Version!.Major);
        Assert.StartsWith(Path.Combine(ModuleSession.ModuleDirectory, "Dependencies"), http.Location);
        Assert.Contains(ours.Assemblies, a => a.GetName().Name == "OllamaContinuity.Engine");
        Assert.DoesNotContain(AssemblyLoadContext.Default.Assemblies, a => a.GetName().Name == "OllamaContinuity.Engine");
    }

    [Fact]
    public void The_module_exports_what_the_manifest_says_with_OutputType()
    {
        var cmd = Assert.Single(_s.Invoke("Get-Command Invoke-AiRequest -Module OllamaContinuity"));
        var info = (CmdletInfo)cmd.BaseObject;
        Assert.Equal("OllamaContinuity.Failover.AiResponse", Assert.Single(info.OutputType).Name);
        Assert.True(info.Parameters["Prompt"].Attributes.OfType<ParameterAttribute>().Single().ValueFromPipeline);
    }
}
