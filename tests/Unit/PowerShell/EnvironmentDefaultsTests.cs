using OllamaContinuity.TestSupport;

namespace OllamaContinuity.PowerShellTests;

[CollectionDefinition("Process environment", DisableParallelization = true)]
public sealed class ProcessEnvironmentCollection
{
}

/// <summary>The seed's environment variables as defaults; parameters win. Changes process-wide state: never in parallel.</summary>
[Collection("Process environment")]
public sealed class EnvironmentDefaultsTests : StandInBackendsTest
{
    private static readonly string[] Names =
        ["CLOUD_API_URL", "CLOUD_API_KEY", "CLOUD_MODEL", "CLOUD_PROVIDER", "CLOUD_TIMEOUT", "OLLAMA_URL", "OLLAMA_MODEL", "OLLAMA_TIMEOUT", "CONNECT_TIMEOUT", "FIRST_TOKEN_TIMEOUT", "AI_CONTINGENCY_MODE", "OLLAMACONTINUITY_LOG_PATH"];

    private readonly Dictionary<string, string?> _saved = Names.ToDictionary(n => n, Environment.GetEnvironmentVariable);
    private ModuleSession _s = null!;
    private string _log = null!;

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        _s = new ModuleSession();
        _log = Path.Combine(TestPaths.New("env-tests"), "requests.jsonl");
        Environment.SetEnvironmentVariable("CLOUD_API_URL", Cloud.ChatUri.ToString());
        Environment.SetEnvironmentVariable("CLOUD_API_KEY", "sk-env-key-0123456789");
        Environment.SetEnvironmentVariable("CLOUD_MODEL", "env-cloud-model");
        Environment.SetEnvironmentVariable("OLLAMA_URL", $"{FakeAiServer.RefusedUri("/")} , {Ollama.BaseUri}");
        Environment.SetEnvironmentVariable("OLLAMA_MODEL", "env-local-model");
        Environment.SetEnvironmentVariable("OLLAMACONTINUITY_LOG_PATH", _log);
    }

    public override async Task DisposeAsync()
    {
        foreach (var (k, v) in _saved)
        {
            Environment.SetEnvironmentVariable(k, v);
        }

        _s.Dispose();
        await base.DisposeAsync();
    }

    [Fact]
    public void Environment_variables_configure_every_backend()
    {
        var r = Assert.Single(_s.Invoke("Invoke-AiRequest 'from env'"));
        Assert.Equal("Cloud", r.Properties["Backend"].Value.ToString());
        var sent = Cloud.Requests.Single();
        Assert.Equal("Bearer sk-env-key-0123456789", sent.Headers["Authorization"]);
        Assert.Equal("env-cloud-model", sent.Json!["model"]!.GetValue<string>());
        Assert.True(File.Exists(_log), "OLLAMACONTINUITY_LOG_PATH is the log");

        Cloud.Fault = FaultSpec.Http(503);
        var local = Assert.Single(_s.Invoke("Invoke-AiRequest 'now local'"));
        Assert.Equal("Ollama", local.Properties["Backend"].Value.ToString());
        Assert.Equal("env-local-model", Ollama.Requests.Single().Json!["model"]!.GetValue<string>());
        // The cloud and its one retry, then OLLAMA_URL as a priority list: the first (refused) server was tried first.
        Assert.Equal(4, ((System.Collections.ICollection)local.Properties["Attempts"].Value).Count);
    }

    [Fact]
    public void Parameters_and_PSDefaultParameterValues_win_over_the_environment()
    {
        var r = Assert.Single(_s.Invoke("$PSDefaultParameterValues['Invoke-AiRequest:CloudModel'] = 'default-model'; Invoke-AiRequest 'x'"));
        Assert.Equal("default-model", Cloud.Requests.Last().Json!["model"]!.GetValue<string>());
        _s.Invoke("Invoke-AiRequest 'x' -CloudModel 'param-model'");
        Assert.Equal("param-model", Cloud.Requests.Last().Json!["model"]!.GetValue<string>());
        Assert.NotNull(r);
    }

    [Fact]
    public void AI_CONTINGENCY_MODE_routes_straight_to_Ollama_without_touching_the_cloud()
    {
        Environment.SetEnvironmentVariable("AI_CONTINGENCY_MODE", "true");
        var r = Assert.Single(_s.Invoke("Invoke-AiRequest 'contingency' -Verbose"));
        Assert.Equal("Ollama", r.Properties["Backend"].Value.ToString());
        Assert.Equal("Contingency", r.Properties["FailoverReason"].Value);
        Assert.Equal(true, r.Properties["Contingency"].Value);
        Assert.Equal("Environment", r.Properties["ContingencySource"].Value);
        Assert.Equal(0, Cloud.Hits);
        Assert.Contains(_s.Streams!.Verbose, v => v.Message == "Contingency mode active, routing directly to Ollama");
    }

    [Fact]
    public void A_bad_timeout_in_the_environment_is_a_clear_error_before_any_request()
    {
        Environment.SetEnvironmentVariable("CLOUD_TIMEOUT", "fifteen");
        var result = _s.Invoke("try { Invoke-AiRequest 'x' } catch { $_ }");
        var e = (System.Management.Automation.ErrorRecord)Assert.Single(result).BaseObject;
        Assert.Equal("InvalidTimeout,OllamaContinuity.Commands.InvokeAiRequestCommand", e.FullyQualifiedErrorId);
        Assert.Contains("CLOUD_TIMEOUT", e.ToString());
        Assert.Equal(0, Cloud.Hits + Ollama.Hits);
    }

    [Theory]
    [InlineData("CONNECT_TIMEOUT", "-ConnectTimeoutSec 2")]
    [InlineData("FIRST_TOKEN_TIMEOUT", "-FirstTokenTimeoutSec 2")]
    public void CONNECT_TIMEOUT_and_FIRST_TOKEN_TIMEOUT_are_read_as_the_gateway_reads_them_and_the_parameter_wins(string variable, string parameter)
    {
        Environment.SetEnvironmentVariable(variable, "soon");
        var e = (System.Management.Automation.ErrorRecord)Assert.Single(_s.Invoke("try { Invoke-AiRequest 'x' } catch { $_ }")).BaseObject;
        Assert.Equal("InvalidTimeout,OllamaContinuity.Commands.InvokeAiRequestCommand", e.FullyQualifiedErrorId);
        Assert.Contains(variable, e.ToString());
        Assert.Equal(0, Cloud.Hits + Ollama.Hits);

        var r = Assert.Single(_s.Invoke($"Invoke-AiRequest 'x' {parameter}"));
        Assert.Equal("Cloud", r.Properties["Backend"].Value.ToString());
    }

    [Fact]
    public void Without_a_key_the_cloud_is_skipped_as_not_configured()
    {
        Environment.SetEnvironmentVariable("CLOUD_API_KEY", null);
        var r = Assert.Single(_s.Invoke("Invoke-AiRequest 'no key'"));
        Assert.Equal("Ollama", r.Properties["Backend"].Value.ToString());
        Assert.Equal("NotConfigured", r.Properties["FailoverReason"].Value);
        Assert.Equal(0, Cloud.Hits);
    }
}
