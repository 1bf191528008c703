"""simple-salesforce, a widely used third-party Salesforce client, against a real `voxbridge
serve`: the three ways an integration logs in, then a Contact and a Case through create,
query, update, get, describe, search and delete, and the library's error classes.

Run by the Rust test crates/cli/tests/it/python_client.rs, which starts the server over
HTTPS (the library always builds https:// URLs) and passes, in the environment:

  VOXBRIDGE_BASE              https://127.0.0.1:PORT
  VOXBRIDGE_CONSUMER_KEY      the demo connected app's consumer key
  VOXBRIDGE_USERNAME          its API user
  VOXBRIDGE_PRIVATE_KEY_FILE  the app's private key (PEM)
  VOXBRIDGE_LOGIN_AUDIENCE    an audience the server was configured to accept
  VOXBRIDGE_ACCESS_TOKEN      an access token from `voxbridge token --crm --json`
  VOXBRIDGE_INSTANCE_URL      and the instance URL of that answer
  REQUESTS_CA_BUNDLE          the server's self-signed certificate
"""

import os
import time
import unittest
import uuid

import jwt
import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceResourceNotFound,
)
from simple_salesforce.login import token_login

BASE = os.environ["VOXBRIDGE_BASE"].rstrip("/")
CONSUMER_KEY = os.environ["VOXBRIDGE_CONSUMER_KEY"]
USERNAME = os.environ["VOXBRIDGE_USERNAME"]
PRIVATE_KEY_FILE = os.environ["VOXBRIDGE_PRIVATE_KEY_FILE"]
LOGIN_AUDIENCE = os.environ["VOXBRIDGE_LOGIN_AUDIENCE"]
LOGIN_HOST = "https://login.salesforce.com"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class LoginHostToVoxbridge(HTTPAdapter):
    """Sends requests addressed to login.salesforce.com to the Voxbridge server instead, as
    a hosts-file entry would, so the library's own JWT login runs unchanged."""

    def send(self, request, **kwargs):
        if request.url.startswith(LOGIN_HOST + "/"):
            request.url = BASE + request.url[len(LOGIN_HOST):]
        return super().send(request, **kwargs)


def library_jwt_login():
    """The library's JWT bearer login as written: aud https://login.salesforce.com, `exp` as
    a string, posted to https://login.salesforce.com/services/oauth2/token."""
    session = requests.Session()
    session.mount(LOGIN_HOST + "/", LoginHostToVoxbridge())
    return Salesforce(
        username=USERNAME,
        consumer_key=CONSUMER_KEY,
        privatekey_file=PRIVATE_KEY_FILE,
        domain="login",
        session=session,
    )


def token_helper_login(audience=LOGIN_AUDIENCE):
    """The library's token helper posting our own assertion to the server's token URL, then
    a session from the access token and instance returned."""
    with open(PRIVATE_KEY_FILE, "rb") as f:
        key = f.read()
    claims = {"iss": CONSUMER_KEY, "sub": USERNAME, "aud": audience, "exp": int(time.time()) + 170}
    assertion = jwt.encode(claims, key, algorithm="RS256")
    access_token, instance = token_login(
        f"{BASE}/services/oauth2/token",
        {"grant_type": JWT_BEARER, "assertion": assertion},
        "login",
        CONSUMER_KEY,
        None,
        None,
    )
    return Salesforce(instance=instance, session_id=access_token)


class Login(unittest.TestCase):
    def assert_session_works(self, sf):
        result = sf.query("SELECT Id, Username FROM User WHERE Username = '%s'" % USERNAME)
        self.assertEqual(result["totalSize"], 1, result)
        self.assertEqual(result["records"][0]["Username"], USERNAME)

    def test_library_jwt_login(self):
        sf = library_jwt_login()
        self.assertEqual(sf.auth_type, "jwt-bearer")
        self.assertTrue(sf.session_id.startswith("00D"), sf.session_id)
        self.assert_session_works(sf)

    def test_token_helper_with_a_configured_audience(self):
        self.assert_session_works(token_helper_login())

    def test_session_from_voxbridge_token(self):
        sf = Salesforce(
            instance_url=os.environ["VOXBRIDGE_INSTANCE_URL"],
            session_id=os.environ["VOXBRIDGE_ACCESS_TOKEN"],
        )
        self.assertEqual(sf.auth_type, "direct")
        self.assert_session_works(sf)

    def test_refused_logins_raise_authentication_failed(self):
        with self.assertRaises(SalesforceAuthenticationFailed) as caught:
            token_helper_login(audience="https://elsewhere.example")
        self.assertEqual(caught.exception.code, "invalid_grant")
        self.assertIn("audience", caught.exception.auth_message)

    def test_an_unknown_session_raises_expired_session(self):
        sf = Salesforce(instance_url=BASE, session_id="00DVX0000000000!not-a-session")
        with self.assertRaises(SalesforceExpiredSession):
            sf.query("SELECT Id FROM Contact")


class Records(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sf = library_jwt_login()

    def test_contact_and_case_lifecycle(self):
        sf = self.sf
        last_name = "Lovelace-" + uuid.uuid4().hex[:8]
        contact = sf.Contact.create(
            {"FirstName": "Ada", "LastName": last_name, "Email": "ada@example.com", "Phone": "+14155550100"}
        )
        self.assertTrue(contact["success"], contact)
        self.assertEqual(contact["errors"], [])
        contact_id = contact["id"]
        self.assertEqual((len(contact_id), contact_id[:3]), (18, "003"))

        case = sf.Case.create(
            {"Subject": "Headset crackles", "ContactId": contact_id, "Origin": "Phone", "Priority": "High"}
        )
        self.assertTrue(case["success"], case)
        case_id = case["id"]
        self.assertEqual(case_id[:3], "500")

        # SOQL, with a parent field through the relationship.
        result = sf.query(
            "SELECT Id, Subject, Status, CaseNumber, IsClosed, Contact.LastName "
            "FROM Case WHERE ContactId = '%s'" % contact_id
        )
        self.assertEqual((result["totalSize"], result["done"]), (1, True), result)
        row = result["records"][0]
        self.assertEqual(row["attributes"]["type"], "Case")
        self.assertEqual(row["Id"], case_id)
        self.assertEqual(row["Status"], "New")
        self.assertFalse(row["IsClosed"])
        self.assertEqual(len(row["CaseNumber"]), 8)
        self.assertEqual(row["Contact"]["LastName"], last_name)
        all_rows = sf.query_all("SELECT Id FROM Contact WHERE LastName = '%s'" % last_name)
        self.assertEqual([r["Id"] for r in all_rows["records"]], [contact_id])

        # Update answers 204; get reads the change back.
        self.assertEqual(sf.Case.update(case_id, {"Status": "Closed", "Priority": "Low"}), 204)
        got = sf.Case.get(case_id)
        self.assertEqual(got["Id"], case_id)
        self.assertEqual((got["Status"], got["Priority"], got["IsClosed"]), ("Closed", "Low", True))
        self.assertEqual(got["ContactId"], contact_id)
        self.assertEqual(sf.Contact.get(contact_id)["Email"], "ada@example.com")

        # Describe: one object, the global list, the object's basic information.
        described = sf.Case.describe()
        self.assertEqual((described["name"], described["keyPrefix"]), ("Case", "500"))
        names = {f["name"] for f in described["fields"]}
        self.assertTrue({"Id", "Subject", "Status", "ContactId", "CaseNumber"} <= names, names)
        self.assertIn("Contact", {o["name"] for o in sf.describe()["sobjects"]})
        self.assertEqual(sf.Contact.metadata()["objectDescribe"]["name"], "Contact")

        # SOSL.
        found = sf.search("FIND {%s} IN NAME FIELDS RETURNING Contact(Id, LastName)" % last_name)
        self.assertEqual([r["Id"] for r in found["searchRecords"]], [contact_id], found)

        # Delete answers 204; the record is gone afterwards.
        self.assertEqual(sf.Case.delete(case_id), 204)
        with self.assertRaises(SalesforceResourceNotFound):
            sf.Case.get(case_id)
        self.assertEqual(sf.Contact.delete(contact_id), 204)
        self.assertEqual(sf.query("SELECT COUNT() FROM Contact WHERE Id = '%s'" % contact_id)["totalSize"], 0)

    def test_platform_errors_become_library_exceptions(self):
        with self.assertRaises(SalesforceMalformedRequest) as caught:
            self.sf.Contact.create({"FirstName": "No last name"})
        self.assertEqual(caught.exception.content[0]["errorCode"], "REQUIRED_FIELD_MISSING")
        with self.assertRaises(SalesforceMalformedRequest) as caught:
            self.sf.query("SELECT Nope FROM Contact")
        self.assertEqual(caught.exception.content[0]["errorCode"], "INVALID_FIELD")
        with self.assertRaises(SalesforceResourceNotFound):
            self.sf.Nope__c.describe()


if __name__ == "__main__":
    unittest.main(verbosity=2)
