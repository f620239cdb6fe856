using System.Collections;
using System.Security;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using OllamaContinuity.Gateway;

namespace OllamaContinuity.Engine.Tests.Gateway;

/// <summary>Client tokens from secrets (the engine side of Start-AiGateway -ClientTokenSecret) and how they reach the gateway.</summary>
public sealed class GatewayClientTokensTests
{
    private const string Token = "oc_engine_token_7b2d9e4f1a6c8035";

    private static SecureString Secure(string s)
    {
        var ss = new SecureString();
        foreach (var c in s)
        {
            ss.AppendChar(c);
        }

        return ss;
    }

    [Fact]
    public void A_plain_secret_is_the_token_and_names_the_client_after_the_secret()
    {
        var t = GatewayClientTokens.FromSecret("billing-app", "  " + Token + "\n");
        Assert.Equal("billing-app", t.Name);
        Assert.Equal(Token, t.Token);
        Assert.Null(t.Workflow);
        Assert.Null(t.RatePerMinute);
        Assert.DoesNotContain(Token, t.ToString());
    }

    [Fact]
    public void A_JSON_object_or_hashtable_secret_carries_name_workflow_and_rate()
    {
        var json = GatewayClientTokens.FromSecret("s1", $$"""{"name":"hr-app","token":"{{Token}}","workflow":"hr-records","ratePerMinute":30}""");
        Assert.Equal(("hr-app", Token, "hr-records", (int?)30), (json.Name, json.Token, json.Workflow, json.RatePerMinute));

        var table = GatewayClientTokens.FromSecret("s2", new Hashtable { ["Token"] = Secure(Token), ["Workflow"] = "billing", ["RatePerMinute"] = 12L });
        Assert.Equal(("s2", Token, "billing", (int?)12), (table.Name, table.Token, table.Workflow, table.RatePerMinute));

        var cred = GatewayClientTokens.FromCredential("s3", "reports", Secure(Token));
        Assert.Equal(("reports", Token), (cred.Name, cred.Token));
    }

    public static TheoryData<string, object, GatewayClientTokenProblem> Bad => new()
    {
        { "short", "oc_short_7b2d", GatewayClientTokenProblem.TooShort },
        { "short in a table", new Hashtable { ["token"] = "oc_short_7b2d" }, GatewayClientTokenProblem.TooShort },
        { "no token", new Hashtable { ["name"] = "x" }, GatewayClientTokenProblem.Invalid },
        { "unknown key", new Hashtable { ["token"] = Token, ["colour"] = "blue" }, GatewayClientTokenProblem.Invalid },
        { "bad workflow", new Hashtable { ["token"] = Token, ["workflow"] = "a b" }, GatewayClientTokenProblem.Invalid },
        { "bad rate", new Hashtable { ["token"] = Token, ["ratePerMinute"] = -1 }, GatewayClientTokenProblem.Invalid },
        { "white space inside", "oc_engine_token 7b2d9e4f1a6c8035", GatewayClientTokenProblem.Invalid },
        { "cut JSON", "{\"token\":\"" + Token, GatewayClientTokenProblem.Invalid },
    };

    [Theory]
    [MemberData(nameof(Bad))]
    public void An_unusable_secret_is_refused_naming_the_secret_never_its_value(string what, object value, GatewayClientTokenProblem problem)
    {
        var e = Assert.Throws<GatewayClientTokenException>(() =>
            value is string s ? GatewayClientTokens.FromSecret("the-secret", s) : GatewayClientTokens.FromSecret("the-secret", (IDictionary)value));
        Assert.Equal(problem, e.Problem);
        Assert.Equal("the-secret", e.SecretName);
        Assert.Contains("'the-secret'", e.Message);
        Assert.DoesNotContain("7b2d", e.Message);
        Assert.NotEmpty(what);
    }

    [Fact]
    public void Two_secrets_naming_one_client_are_refused()
    {
        var a = GatewayClientTokens.FromSecret("a", new Hashtable { ["name"] = "same", ["token"] = Token });
        var b = GatewayClientTokens.FromSecret("b", new Hashtable { ["name"] = "same", ["token"] = Token + "x" });
        GatewayClientTokens.EnsureDistinctNames([("a", a)]);
        var e = Assert.Throws<GatewayClientTokenException>(() => GatewayClientTokens.EnsureDistinctNames([("a", a), ("b", b)]));
        Assert.Equal(GatewayClientTokenProblem.DuplicateName, e.Problem);
        Assert.Contains("'same'", e.Message);
    }

    [Fact]
    public void The_stdin_document_holds_the_tokens_and_the_hashed_one_only_their_SHA256()
    {
        var tokens = new[]
        {
            new GatewayClientToken { Name = "app", Token = Token },
            new GatewayClientToken { Name = "hr", Token = Token + "hr", Workflow = "hr-records", RatePerMinute = 5 },
        };
        using var plain = JsonDocument.Parse(GatewayClientTokens.ToStdinDocument(tokens));
        var arr = plain.RootElement.GetProperty("tokens");
        Assert.Equal(Token, arr[0].GetProperty("token").GetString());
        Assert.Equal("hr-records", arr[1].GetProperty("workflow").GetString());
        Assert.Equal(5, arr[1].GetProperty("ratePerMinute").GetInt32());

        var hashedBytes = GatewayClientTokens.ToHashedDocument(tokens);
        Assert.DoesNotContain(Token, Encoding.UTF8.GetString(hashedBytes));
        using var hashed = JsonDocument.Parse(hashedBytes);
        Assert.Equal(Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(Token))).ToLowerInvariant(),
            hashed.RootElement.GetProperty("tokens")[0].GetProperty("sha256").GetString());
        Assert.False(hashed.RootElement.GetProperty("tokens")[0].TryGetProperty("token", out _));
    }

    [Fact]
    public void Tokens_from_secrets_put_only_the_tokens_stdin_switch_on_the_command_line()
    {
        var s = new GatewayStartSettings
        {
            GatewayDirectory = "/nowhere",
            TokensFile = null,
            ClientTokens = [new GatewayClientToken { Name = "app", Token = Token }],
        };
        var args = GatewayControl.BuildArguments(s);
        Assert.Contains("--tokens-stdin", args);
        Assert.DoesNotContain("--tokens-file", args);
        Assert.DoesNotContain(args, a => a.Contains("7b2d", StringComparison.Ordinal));

        var both = GatewayControl.BuildArguments(s with { TokensFile = "/tmp/t.json" });
        Assert.Contains("--tokens-stdin", both);
        Assert.Contains("--tokens-file", both);

        var fileOnly = GatewayControl.BuildArguments(s with { TokensFile = "/tmp/t.json", ClientTokens = [] });
        Assert.DoesNotContain("--tokens-stdin", fileOnly);
    }

    [Fact]
    public async Task Starting_without_any_token_source_is_refused()
    {
        var dir = OllamaContinuity.TestSupport.TestPaths.New("gw-none");
        Directory.CreateDirectory(dir);
        await File.WriteAllTextAsync(Path.Combine(dir, GatewayControl.GatewayAssembly), "");
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            GatewayControl.StartAsync(new GatewayStartSettings { GatewayDirectory = dir, TokensFile = null }, CancellationToken.None));
        Assert.Contains("needs client tokens", e.Message);
    }
}
