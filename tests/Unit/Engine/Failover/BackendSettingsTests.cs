using OllamaContinuity.Failover;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Tests.Failover;

/// <summary>One resolution of the backend settings for the cmdlets, the gateway and the IChatClient: explicit values over the environment over the defaults, every bad value an error with its id.</summary>
public sealed class BackendSettingsTests
{
    private static BackendPlan Resolve(BackendOverrides? o = null, Dictionary<string, string>? env = null) =>
        BackendSettings.Resolve(o, name => env is not null && env.TryGetValue(name, out var v) ? v : null);

    private static ArgumentException Fails(BackendOverrides? o = null, Dictionary<string, string>? env = null) =>
        Assert.ThrowsAny<ArgumentException>(() => Resolve(o, env));

    private static readonly Dictionary<string, string> FullEnvironment = new()
    {
        ["CLOUD_PROVIDER"] = "anthropic",
        ["CLOUD_API_URL"] = "https://llm.example.com/v1/messages",
        ["CLOUD_MODEL"] = "env-cloud",
        ["CLOUD_API_KEY"] = "  sk-env-0123456789\n",
        ["CLOUD_TIMEOUT"] = "20",
        ["OLLAMA_URL"] = "http://gpu01:11434, gpu02:11434;http://gpu03:11434/api/chat",
        ["OLLAMA_MODEL"] = "env-local",
        ["OLLAMA_TIMEOUT"] = "90",
        ["CONNECT_TIMEOUT"] = "1.5",
        ["FIRST_TOKEN_TIMEOUT"] = "7",
    };

    [Fact]
    public void Without_overrides_or_environment_the_defaults_apply()
    {
        var plan = Resolve();
        var cloud = plan.Cloud!;
        Assert.Equal(BackendKind.OpenAI, cloud.Kind);
        Assert.Equal(new Uri(BackendEndpoint.DefaultOpenAIUri), cloud.Uri);
        Assert.Equal("gpt-4o", cloud.Model);
        Assert.False(cloud.HasApiKey); // no key: the cloud is skipped as NotConfigured
        Assert.Equal(TimeSpan.FromSeconds(3), cloud.Timeouts.Connect);
        Assert.Equal(TimeSpan.FromSeconds(15), cloud.Timeouts.Total);
        Assert.Equal(TimeSpan.FromSeconds(10), cloud.Timeouts.FirstToken);
        var ollama = Assert.Single(plan.Ollama);
        Assert.Equal(new Uri(BackendEndpoint.DefaultOllamaUri), ollama.Uri);
        Assert.Equal("llama3.1:8b", ollama.Model);
        Assert.Equal(TimeSpan.FromSeconds(60), ollama.Timeouts.Total);
        Assert.Equal(TimeSpan.FromSeconds(3), ollama.Timeouts.Connect);
        Assert.Null(ollama.Timeouts.FirstToken);
        Assert.Null(plan.LogPath);
    }

    [Fact]
    public void Anthropic_without_a_URL_gets_Anthropic_URL_and_model()
    {
        var plan = Resolve(env: new() { ["CLOUD_PROVIDER"] = "Anthropic" });
        Assert.Equal(BackendKind.Anthropic, plan.Cloud!.Kind);
        Assert.Equal(new Uri(BackendEndpoint.DefaultAnthropicUri), plan.Cloud.Uri);
        Assert.Equal("claude-sonnet-4-5", plan.Cloud.Model);
        Assert.Equal(BackendKind.Anthropic, Resolve(new BackendOverrides { CloudProvider = BackendKind.Anthropic }).Cloud!.Kind);
        // Guessed from the URL when not named; a CLOUD_PROVIDER that is not a cloud API is ignored.
        Assert.Equal(BackendKind.Anthropic, Resolve(env: new() { ["CLOUD_API_URL"] = "https://proxy.local/v1/messages", ["CLOUD_PROVIDER"] = "ollama" }).Cloud!.Kind);
    }

    [Fact]
    public void The_environment_configures_every_setting()
    {
        var plan = Resolve(env: FullEnvironment);
        var cloud = plan.Cloud!;
        Assert.Equal(BackendKind.Anthropic, cloud.Kind);
        Assert.Equal("https://llm.example.com/v1/messages", cloud.Uri.ToString());
        Assert.Equal("env-cloud", cloud.Model);
        Assert.True(cloud.HasApiKey);
        Assert.Equal(TimeSpan.FromSeconds(20), cloud.Timeouts.Total);
        Assert.Equal(TimeSpan.FromSeconds(1.5), cloud.Timeouts.Connect);
        Assert.Equal(TimeSpan.FromSeconds(7), cloud.Timeouts.FirstToken);
        Assert.Equal(["http://gpu01:11434/api/chat", "http://gpu02:11434/api/chat", "http://gpu03:11434/api/chat"], plan.Ollama.Select(o => o.Uri.ToString()));
        Assert.All(plan.Ollama, o =>
        {
            Assert.Equal("env-local", o.Model);
            Assert.Equal(TimeSpan.FromSeconds(90), o.Timeouts.Total);
            Assert.Equal(TimeSpan.FromSeconds(1.5), o.Timeouts.Connect);
            Assert.Equal(TimeSpan.FromSeconds(7), o.Timeouts.FirstToken);
        });
    }

    [Fact]
    public void Explicit_values_win_over_the_environment()
    {
        var plan = Resolve(new BackendOverrides
        {
            CloudProvider = BackendKind.OpenAI,
            CloudUri = "http://127.0.0.1:9/v1/chat/completions",
            CloudModel = "given-cloud",
            CloudApiKey = "sk-given-0123456789",
            CloudTimeout = TimeSpan.FromSeconds(4),
            OllamaUris = ["http://127.0.0.1:10"],
            OllamaModel = "given-local",
            OllamaTimeout = TimeSpan.FromSeconds(5),
            ConnectTimeout = TimeSpan.FromSeconds(0.5),
            FirstTokenTimeout = TimeSpan.FromSeconds(2),
            LogPath = "/tmp/given.jsonl",
        }, FullEnvironment);
        var cloud = plan.Cloud!;
        Assert.Equal(BackendKind.OpenAI, cloud.Kind);
        Assert.Equal(9, cloud.Uri.Port);
        Assert.Equal("given-cloud", cloud.Model);
        Assert.Equal(TimeSpan.FromSeconds(4), cloud.Timeouts.Total);
        Assert.Equal(TimeSpan.FromSeconds(0.5), cloud.Timeouts.Connect);
        Assert.Equal(TimeSpan.FromSeconds(2), cloud.Timeouts.FirstToken);
        var ollama = Assert.Single(plan.Ollama);
        Assert.Equal(10, ollama.Uri.Port);
        Assert.Equal("given-local", ollama.Model);
        Assert.Equal(TimeSpan.FromSeconds(5), ollama.Timeouts.Total);
        Assert.Equal("/tmp/given.jsonl", plan.LogPath);
    }

    [Fact]
    public void The_cloud_first_token_default_never_exceeds_the_cloud_timeout()
    {
        var plan = Resolve(new BackendOverrides { CloudTimeout = TimeSpan.FromSeconds(4) });
        Assert.Equal(TimeSpan.FromSeconds(4), plan.Cloud!.Timeouts.FirstToken);
    }

    [Fact]
    public void An_explicit_key_wins_over_CLOUD_API_KEY_even_when_it_is_bad()
    {
        var e = Fails(new BackendOverrides { CloudApiKey = null, SettingName = n => "-" + n }, FullEnvironment);
        Assert.Equal(ApiKeys.InvalidKeyId, e.ParamName);
        Assert.Contains("-CloudApiKey", e.Message);
        Assert.False(new BackendOverrides().CloudApiKeyGiven);
        Assert.True((new BackendOverrides() with { CloudApiKey = null }).CloudApiKeyGiven);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("sk-abc\r\nX-Injected: 1", "control character")]
    [InlineData("sk-\u00a0abcdef", "non-ASCII")]
    public void A_bad_key_is_InvalidCloudApiKey_from_either_source_and_never_in_the_message(string key, string why)
    {
        var given = Fails(new BackendOverrides { CloudApiKey = key });
        Assert.Equal(ApiKeys.InvalidKeyId, given.ParamName);
        Assert.Contains(why, given.Message);
        Assert.Contains("CloudApiKey", given.Message);
        if (key.Length > 0)
        {
            Assert.DoesNotContain("abcdef", given.Message);
            var env = Fails(env: new() { ["CLOUD_API_KEY"] = key });
            Assert.Equal(ApiKeys.InvalidKeyId, env.ParamName);
            Assert.Contains("CLOUD_API_KEY", env.Message);
        }

        // Set but white space only: a key that is there but holds nothing.
        Assert.Equal(ApiKeys.InvalidKeyId, Fails(env: new() { ["CLOUD_API_KEY"] = "   " }).ParamName);
    }

    [Theory]
    [InlineData("ftp://example.invalid/x")]
    [InlineData("not a uri")]
    public void A_bad_cloud_URL_is_InvalidCloudUri_naming_where_it_came_from(string uri)
    {
        var given = Fails(new BackendOverrides { CloudUri = uri, SettingName = n => "-" + n });
        Assert.Equal(BackendSettings.InvalidCloudUriId, given.ParamName);
        Assert.Contains("(from -CloudUri)", given.Message);
        var env = Fails(env: new() { ["CLOUD_API_URL"] = uri });
        Assert.Equal(BackendSettings.InvalidCloudUriId, env.ParamName);
        Assert.Contains("(from CLOUD_API_URL)", env.Message);
    }

    [Fact]
    public void A_bad_Ollama_URL_is_InvalidOllamaUri_naming_where_it_came_from()
    {
        var given = Fails(new BackendOverrides { OllamaUris = ["http://ok:11434", "http://"] });
        Assert.Equal(BackendSettings.InvalidOllamaUriId, given.ParamName);
        Assert.Contains("(from OllamaUris)", given.Message);
        Assert.Contains("(from -OllamaUri)", Fails(new BackendOverrides { OllamaUris = ["http://"], SettingName = n => n == "OllamaUris" ? "-OllamaUri" : n }).Message);
        var env = Fails(env: new() { ["OLLAMA_URL"] = "http://ok:11434,ftp://x" });
        Assert.Equal(BackendSettings.InvalidOllamaUriId, env.ParamName);
        Assert.Contains("(from OLLAMA_URL)", env.Message);
        Assert.Equal(BackendSettings.InvalidOllamaUriId, Fails(new BackendOverrides { OllamaUris = [] }).ParamName);
        Assert.Equal(BackendSettings.InvalidOllamaUriId, Fails(env: new() { ["OLLAMA_URL"] = " , ; " }).ParamName);
    }

    [Theory]
    [InlineData("CLOUD_TIMEOUT", "fifteen")]
    [InlineData("OLLAMA_TIMEOUT", "0")]
    [InlineData("CONNECT_TIMEOUT", "-1")]
    [InlineData("CONNECT_TIMEOUT", "601")]
    [InlineData("FIRST_TOKEN_TIMEOUT", "3601")]
    [InlineData("CLOUD_TIMEOUT", "1,5")]
    public void A_bad_timeout_in_the_environment_is_InvalidTimeout_naming_the_variable(string variable, string value)
    {
        var e = Fails(env: new() { [variable] = value });
        Assert.Equal(BackendSettings.InvalidTimeoutId, e.ParamName);
        Assert.Contains($"The environment variable {variable} ('{value}')", e.Message);
    }

    [Fact]
    public void A_bad_explicit_timeout_is_InvalidTimeout_and_a_good_one_hides_a_bad_variable()
    {
        var e = Fails(new BackendOverrides { CloudTimeout = TimeSpan.Zero });
        Assert.Equal(BackendSettings.InvalidTimeoutId, e.ParamName);
        Assert.StartsWith("CloudTimeout (0 s)", e.Message);
        Assert.StartsWith("-CloudTimeoutSec (0 s)", Fails(new BackendOverrides { CloudTimeout = TimeSpan.Zero, SettingName = n => "-" + n + "Sec" }).Message);
        Assert.Equal(BackendSettings.InvalidTimeoutId, Fails(new BackendOverrides { ConnectTimeout = TimeSpan.FromMinutes(11) }).ParamName);
        Assert.Equal(BackendSettings.InvalidTimeoutId, Fails(new BackendOverrides { FirstTokenTimeout = TimeSpan.FromSeconds(-1) }).ParamName);
        Assert.Equal(TimeSpan.FromSeconds(2), Resolve(new BackendOverrides { CloudTimeout = TimeSpan.FromSeconds(2) }, new() { ["CLOUD_TIMEOUT"] = "fifteen" }).Cloud!.Timeouts.Total);
    }

    [Fact]
    public void Without_an_accessor_the_process_environment_is_read()
    {
        var name = BackendSettings.CloudModelVariable;
        var saved = Environment.GetEnvironmentVariable(name);
        try
        {
            Environment.SetEnvironmentVariable(name, "process-env-model");
            Assert.Equal("process-env-model", BackendSettings.Resolve().Cloud!.Model);
        }
        finally
        {
            Environment.SetEnvironmentVariable(name, saved);
        }
    }
}
