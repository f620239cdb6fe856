using OllamaContinuity.Failover;

namespace OllamaContinuity.Gateway.Tests;

/// <summary>The gateway reads its backends through the engine's one settings resolution (the copy it had skipped the key check).</summary>
public sealed class GatewaySettingsTests
{
    private static Func<string, string?> Env(params (string Name, string Value)[] vars) =>
        name => vars.FirstOrDefault(v => v.Name == name).Value;

    [Fact]
    public void A_cloud_key_with_a_line_break_is_refused_before_the_gateway_starts()
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => BackendSettings.FromEnvironment(Env(("CLOUD_API_KEY", "sk-abc\r\nX-Evil: 1")), null));
        Assert.Equal("InvalidCloudApiKey", e.ParamName);
        Assert.Contains("CLOUD_API_KEY", e.Message);
    }

    [Fact]
    public void The_environment_is_resolved_as_for_Invoke_AiRequest()
    {
        var env = Env(("CLOUD_API_URL", "http://127.0.0.1:9/v1/messages"), ("CLOUD_API_KEY", " sk-0123456789 \n"), ("CONNECT_TIMEOUT", "1"), ("OLLAMA_URL", "a:1,b:2"));
        var plan = BackendSettings.FromEnvironment(env, "/tmp/gw.jsonl");
        Assert.Equal(Failover.BackendSettings.Resolve(new BackendOverrides { LogPath = "/tmp/gw.jsonl" }, env), plan with { }, new PlanComparer());
        Assert.Equal(BackendKind.Anthropic, plan.Cloud!.Kind);
        Assert.Equal(TimeSpan.FromSeconds(1), plan.Cloud.Timeouts.Connect);
        Assert.Equal(2, plan.Ollama.Count);
        Assert.Equal("/tmp/gw.jsonl", plan.LogPath);
        Assert.Equal("InvalidTimeout", Assert.ThrowsAny<ArgumentException>(() => BackendSettings.FromEnvironment(Env(("OLLAMA_TIMEOUT", "x")), null)).ParamName);
        Assert.Equal("InvalidCloudUri", Assert.ThrowsAny<ArgumentException>(() => BackendSettings.FromEnvironment(Env(("CLOUD_API_URL", "ftp://x")), null)).ParamName);
    }

    [Fact]
    public void Inline_io_is_on_by_default_on_Linux_and_set_by_its_option_or_variable()
    {
        Assert.Equal(OperatingSystem.IsLinux(), GatewayOptions.DefaultInlineIo(null));
        Assert.Equal(OperatingSystem.IsLinux(), GatewayOptions.DefaultInlineIo(""));
        Assert.False(GatewayOptions.DefaultInlineIo("0"));
        Assert.False(GatewayOptions.DefaultInlineIo("false"));
        Assert.True(GatewayOptions.DefaultInlineIo("1"));
        Assert.True(GatewayOptions.DefaultInlineIo(" TRUE "));
        Assert.Contains(GatewayOptions.InlineIoVariable, Assert.Throws<ArgumentException>(() => GatewayOptions.DefaultInlineIo("maybe")).Message);

        Assert.False(GatewayOptions.Parse(["--inline-io", "false"]).InlineIo);
        Assert.True(GatewayOptions.Parse(["--inline-io", "true"]).InlineIo);
        Assert.Contains("--inline-io 'sometimes'", Assert.Throws<ArgumentException>(() => GatewayOptions.Parse(["--inline-io", "sometimes"])).Message);
        Assert.Contains("--inline-io needs a value", Assert.Throws<ArgumentException>(() => GatewayOptions.Parse(["--inline-io"])).Message);
    }

    private sealed class PlanComparer : IEqualityComparer<BackendPlan>
    {
        public bool Equals(BackendPlan? a, BackendPlan? b) =>
            a is not null && b is not null && a.LogPath == b.LogPath && a.Cloud?.ToString() == b.Cloud?.ToString() && a.Cloud?.Timeouts == b.Cloud?.Timeouts &&
            a.Ollama.Select(o => (o.ToString(), o.Timeouts)).SequenceEqual(b.Ollama.Select(o => (o.ToString(), o.Timeouts)));

        public int GetHashCode(BackendPlan p) => 0;
    }
}
