using System.Management.Automation;
using System.Net;

namespace OllamaContinuity.Internal;

/// <summary>
/// Client tokens from SecretManagement for the gateway cmdlets (Start-AiGateway -ClientTokenSecret; Install-AiGateway
/// can call the same): Get-Secret runs in the caller's session, whichever module provides it, and each value becomes
/// a client token (the engine's GatewayClientTokens). Every error has a stable ErrorId and names the secret, never
/// its value: SecretManagementNotAvailable, ClientTokenSecretNotFound, ClientTokenSecretReadFailed,
/// ClientTokenSecretInvalid, ClientTokenTooShort, DuplicateClientName.
/// </summary>
internal static class ClientTokenSecrets
{
    /// <summary>
    /// Runs Get-Secret -Name N [-Vault V] -AsPlainText in the caller's session (whichever module provides it) for each
    /// secret; returns the client tokens (engine type, boxed). Errors name the secret, never its value.
    /// </summary>
    public static object Read(PSCmdlet cmdlet, string[] names, string? vault)
    {
        var getSecret = cmdlet.InvokeCommand.GetCommand("Get-Secret", CommandTypes.Cmdlet | CommandTypes.Function | CommandTypes.Alias);
        if (getSecret is null)
        {
            cmdlet.ThrowTerminatingError(new ErrorRecord(
                new InvalidOperationException("-ClientTokenSecret reads secrets with Get-Secret (Microsoft.PowerShell.SecretManagement), and no Get-Secret command is available in this session."),
                "SecretManagementNotAvailable", ErrorCategory.ObjectNotFound, "Get-Secret")
            {
                ErrorDetails = new ErrorDetails("-ClientTokenSecret reads secrets with Get-Secret (Microsoft.PowerShell.SecretManagement), and no Get-Secret command is available in this session.")
                {
                    RecommendedAction = "Install and import Microsoft.PowerShell.SecretManagement with a vault extension (Register-SecretVault, Set-Secret), or give the tokens with -TokensFile.",
                },
            });
        }

        var values = new List<(string Secret, object Value)>();
        foreach (var name in names)
        {
            using var ps = System.Management.Automation.PowerShell.Create(RunspaceMode.CurrentRunspace);
            ps.AddCommand(getSecret).AddParameter("Name", name).AddParameter("AsPlainText", true);
            if (vault is not null)
            {
                ps.AddParameter("Vault", vault);
            }

            System.Collections.ObjectModel.Collection<PSObject> results;
            try
            {
                results = ps.Invoke();
            }
            catch (RuntimeException e)
            {
                cmdlet.ThrowTerminatingError(new ErrorRecord(
                    new InvalidOperationException($"Get-Secret could not read the secret '{name}'{InVault()}: {e.Message}", e), "ClientTokenSecretReadFailed", ErrorCategory.ReadError, name));
                return null!;
            }

            var found = results.Where(r => r is not null).Select(r => r.BaseObject).ToList();
            if (found.Count == 0 && ps.Streams.Error.FirstOrDefault(e => !e.FullyQualifiedErrorId.StartsWith("GetSecretNotFound", StringComparison.Ordinal)) is { } failure)
            {
                // The vault failed (locked, unreachable, an extension error): not the same as a secret that is not there.
                cmdlet.ThrowTerminatingError(new ErrorRecord(
                    new InvalidOperationException($"Get-Secret could not read the secret '{name}'{InVault()}: {failure.Exception?.Message}", failure.Exception), "ClientTokenSecretReadFailed", ErrorCategory.ReadError, name));
            }

            if (found.Count == 0)
            {
                var why = ps.Streams.Error.FirstOrDefault()?.Exception?.Message;
                cmdlet.ThrowTerminatingError(new ErrorRecord(
                    new ItemNotFoundException($"The client token secret '{name}' was not found{InVault()}." + (why is null ? "" : " Get-Secret: " + why)), "ClientTokenSecretNotFound", ErrorCategory.ObjectNotFound, name));
            }

            if (found.Count > 1)
            {
                cmdlet.ThrowTerminatingError(new ErrorRecord(
                    new InvalidOperationException($"Get-Secret returned {found.Count} values for the secret '{name}'{InVault()}; a client token secret holds one."), "ClientTokenSecretInvalid", ErrorCategory.InvalidData, name));
            }

            values.Add((name, found[0]));
        }

        try
        {
            var tokens = EngineSide.ToTokens(values);
            cmdlet.Narrate($"Read {names.Length} client token(s) from SecretManagement{InVault()}: {EngineSide.Describe(tokens)}. They reach the gateway over its standard input, never on disk.");
            return tokens;
        }
        catch (FormatException e)
        {
            var (id, category) = EngineSide.Classify(e);
            cmdlet.ThrowTerminatingError(new ErrorRecord(e, id, category, EngineSide.SecretOf(e)));
            return null!;
        }

        string InVault() => vault is null ? "" : $" in the vault '{vault}'";
    }

    /// <summary>Keeps engine types out of any cmdlet's signature (the module's load context resolves them at run time).</summary>
    private static class EngineSide
    {
        public static object ToTokens(List<(string Secret, object Value)> values)
        {
            var list = new List<(string, OllamaContinuity.Gateway.GatewayClientToken)>();
            foreach (var (secret, value) in values)
            {
                list.Add((secret, value switch
                {
                    string s => OllamaContinuity.Gateway.GatewayClientTokens.FromSecret(secret, s),
                    System.Security.SecureString ss => OllamaContinuity.Gateway.GatewayClientTokens.FromSecret(secret, new NetworkCredential("", ss).Password),
                    PSCredential cred => OllamaContinuity.Gateway.GatewayClientTokens.FromCredential(secret, cred.UserName, cred.Password),
                    System.Collections.IDictionary d => OllamaContinuity.Gateway.GatewayClientTokens.FromSecret(secret, d),
                    _ => throw new OllamaContinuity.Gateway.GatewayClientTokenException(secret, OllamaContinuity.Gateway.GatewayClientTokenProblem.Invalid,
                        $"The secret '{secret}' is a {value.GetType().Name}: a client token secret holds the token (a string or SecureString), a hashtable with \"token\" (and optionally \"name\", \"workflow\", \"ratePerMinute\"), or a PSCredential (user name: client name, password: token)."),
                }));
            }

            OllamaContinuity.Gateway.GatewayClientTokens.EnsureDistinctNames(list);
            return list.Select(t => t.Item2).ToArray();
        }

        public static string Describe(object tokens) =>
            string.Join(", ", ((OllamaContinuity.Gateway.GatewayClientToken[])tokens).Select(t => t.Workflow is null ? $"client '{t.Name}'" : $"client '{t.Name}' (workflow {t.Workflow})"));

        public static (string Id, ErrorCategory Category) Classify(FormatException e) =>
            e is OllamaContinuity.Gateway.GatewayClientTokenException t
                ? t.Problem switch
                {
                    OllamaContinuity.Gateway.GatewayClientTokenProblem.TooShort => ("ClientTokenTooShort", ErrorCategory.InvalidData),
                    OllamaContinuity.Gateway.GatewayClientTokenProblem.DuplicateName => ("DuplicateClientName", ErrorCategory.InvalidArgument),
                    _ => ("ClientTokenSecretInvalid", ErrorCategory.InvalidData),
                }
                : ("ClientTokenSecretInvalid", ErrorCategory.InvalidData);

        public static string? SecretOf(FormatException e) => (e as OllamaContinuity.Gateway.GatewayClientTokenException)?.SecretName;
    }
}
