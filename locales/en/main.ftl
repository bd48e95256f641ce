app-name = National Single Window
skip-to-content = Skip to main content
language-switch = Language
nav-label = Main menu
logout = Log out
footer-text = National Single Window: customs declarations, licences and certificates, fully online.
back-home = Back to the start page
save = Save
field-required = This field is required.
field-too-long = At most { $max } characters.
field-country-invalid = Enter a two-letter ISO 3166-1 country code, e.g. VN.
form-errors-title = { $count ->
    [one] There is 1 problem to correct
   *[other] There are { $count } problems to correct
}

role-enterprise = trader
role-ministry = ministry officer
role-customs = customs officer
role-partner = partner window
role-admin = operator

nav-home = Start
nav-declarations = Declarations
nav-applications = Licence applications
nav-licences = Licences
nav-certificates = Certificates of origin
nav-profile = Profile
nav-inbox = Inbox
nav-agency-licences = Issued licences
nav-customs-declarations = Declarations to decide
nav-partner-documents = Partner documents

home-title = Start
home-welcome = Choose what you want to do.
home-submit-declaration = Submit a declaration
home-apply-licence = Apply for a licence

login-title = Log in
login-intro = Log in with your party id (tax code or agency id) and your password.
login-party-id = Party id
login-password = Password
login-submit = Log in
login-failed = The party id or the password is not right.
login-missing = Enter your party id and your password.
login-systems-note = Software systems use the API with a bearer token instead.

profile-title = Your profile
profile-intro = Your name and address as documents written for you by the window carry them (data supplied once).
profile-name = Name
profile-street = Street
profile-city = City or province
profile-post-code = Postal code
profile-country = Country (ISO code)
profile-saved = Your profile is saved.

error-code = Code
error-login-required = Log-in required
error-login-required-text = Log in to see this page.
error-csrf = The form has expired
error-csrf-text = The form's security token is missing or out of date. Open the page again and send the form once more.
error-forbidden = Not allowed
error-forbidden-text = Your role may not open this page.
error-not-found = Page not found
error-not-found-text = There is nothing here, or nothing you may see.
error-throttled = Too many attempts
error-throttled-text = There were too many failed attempts. Wait a few minutes and try again.
error-conflict = Not possible now
error-conflict-text = This cannot be done in the dossier's present state; it may have been decided already.
error-bad-request = Request not understood
error-bad-request-text = The window could not read what the form sent. Open the page again and retry.
error-unavailable = Service unavailable
error-unavailable-text = The window cannot reach its database just now. Nothing was changed; try again shortly.
error-internal = Something went wrong
error-internal-text = The window failed to show this page. The fault was logged; nothing you sent was lost.
