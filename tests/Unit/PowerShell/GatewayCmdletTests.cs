using System.Diagnostics;
using System.Management.Automation;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.PowerShellTests;

/// <summary>
/// Start-, Get- and Stop-AiGateway through a real PowerShell: the gateway runs as its own process from the module's
/// Gateway folder, with fake cloud and Ollama servers behind it. They set OLLAMACONTINUITY_STATE_DIR, so they run in
/// the serial collection.
/// </summary>
[Collection("Process environment")]
public sealed class GatewayCmdletTests : StandInBackendsTest
{
    private readonly string? _savedStateDir = Environment.GetEnvironmentVariable("OLLAMACONTINUITY_STATE_DIR");
    private readonly string _state = TestPaths.New("ps-gateway");
    private ModuleSession _s = null!;

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        Environment.SetEnvironmentVariable("OLLAMACONTINUITY_STATE_DIR", _state);
        _s = new ModuleSession();
    }

    public override async Task DisposeAsync()
    {
        _s.Invoke("Stop-AiGateway -Confirm:$false");
        _s.Dispose();
        Environment.SetEnvironmentVariable("OLLAMACONTINUITY_STATE_DIR", _savedStateDir);
        await base.DisposeAsync();
    }

    [Fact]
    public async Task Start_serves_applications_Get_shows_health_and_counts_Stop_ends_the_process()
    {
        var started = Assert.Single(_s.Invoke(
            "Start-AiGateway -Port 0 -CloudUri $cloud -CloudApiKey $k -OllamaUri $ollama",
            new Dictionary<string, object?> { ["cloud"] = Cloud.ChatUri.ToString(), ["ollama"] = Ollama.BaseUri.ToString(), ["k"] = Secure("sk-cloud-test") }));
        Assert.False(_s.HadErrors, string.Join("; ", _s.Streams!.Error));
        var url = (string)started.Properties["Url"].Value;
        var pid = (int)started.Properties["ProcessId"].Value;
        Assert.Equal("Healthy", started.Properties["Health"].Value);
        Assert.StartsWith("http://127.0.0.1:", url);
        Assert.Equal(Path.Combine(_state, "User", "gateway-tokens.json"), started.Properties["TokensFile"].Value);

        // An application with the token from the file the cmdlet created.
        var token = (string)JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(_state, "User", "gateway-tokens.json")))!["tokens"]![0]!["token"]!;
        using var http = new HttpClient();
        using var m = new HttpRequestMessage(HttpMethod.Post, url + "/v1/chat/completions")
        {
            Content = new StringContent("""{"model":"ollamacontinuity","messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json"),
        };
        m.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var r = await http.SendAsync(m);
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Contains("cloud: reply to hi", await r.Content.ReadAsStringAsync());
        Assert.Equal("Bearer sk-cloud-test", Cloud.Requests.Single().Headers["Authorization"]);

        var status = Assert.Single(_s.Invoke("Get-AiGateway"));
        Assert.Equal(true, status.Properties["Running"].Value);
        Assert.Equal(1L, status.Properties["Requests"].Value);
        Assert.Equal(0L, status.Properties["Failovers"].Value);
        Assert.Equal(pid, status.Properties["ProcessId"].Value);

        // A second gateway is refused while this one runs.
        _s.Invoke("Start-AiGateway -Port 0 -ErrorAction SilentlyContinue");
        Assert.Equal("GatewayAlreadyRunning,OllamaContinuity.Commands.StartAiGatewayCommand", _s.Streams!.Error.Single().FullyQualifiedErrorId);

        _s.Invoke("Stop-AiGateway -WhatIf");
        Assert.False(Process.GetProcessById(pid).HasExited);
        _s.Invoke("Stop-AiGateway -Confirm:$false");
        Assert.False(_s.HadErrors);
        Assert.Throws<ArgumentException>(() => Process.GetProcessById(pid).WaitForExit(5000) ? throw new ArgumentException("gone") : Process.GetProcessById(pid));
        Assert.Empty(_s.Invoke("Get-AiGateway"));
    }

    private static System.Security.SecureString Secure(string value)
    {
        var s = new System.Security.SecureString();
        foreach (var c in value)
        {
            s.AppendChar(c);
        }

        s.MakeReadOnly();
        return s;
    }

    [Fact]
    public void Binding_beyond_loopback_without_Force_is_refused_before_anything_starts()
    {
        _s.Invoke("Start-AiGateway -BindAddress 0.0.0.0 -Port 0 -ErrorAction SilentlyContinue");
        Assert.Equal("NonLoopbackBindNeedsForce,OllamaContinuity.Commands.StartAiGatewayCommand", _s.Streams!.Error.Single().FullyQualifiedErrorId);
        Assert.False(File.Exists(Path.Combine(_state, "User", "gateway.json")));
        Assert.False(File.Exists(Path.Combine(_state, "User", "gateway-tokens.json")));
    }

    [Fact]
    public void Start_WhatIf_starts_nothing_and_creates_no_token()
    {
        _s.Invoke("Start-AiGateway -Port 0 -WhatIf");
        Assert.False(_s.HadErrors);
        Assert.False(File.Exists(Path.Combine(_state, "User", "gateway-tokens.json")));
        Assert.Empty(_s.Invoke("Get-AiGateway"));
    }
}
